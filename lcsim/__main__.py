"""`python -m lcsim` is the `lcsim` command."""

import sys

from lcsim.cli import main

sys.exit(main())

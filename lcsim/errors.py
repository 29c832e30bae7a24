"""The one error type for a mistake in what the user asked for.

Every stage raises a subclass of `UserError` (TableError, ConfigError, DatasetNotFoundError,
PresetError, ...) for bad input: a missing or corrupt file, an out-of-range value, a device
that is not there. The `lcsim` command prints it as one line, `lcsim <cmd>: error: <message>`,
and exits with status 2; anything else is a bug and keeps its traceback. In Python the
subclasses also derive from the builtin they refine (ValueError, FileNotFoundError), so
callers that caught those keep working.
"""

from __future__ import annotations

__all__ = ["UserError", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2  # argparse's own status for a bad argument


class UserError(Exception):
    """Bad input, named in the message; printed without a traceback by the CLI."""

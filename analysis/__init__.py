"""analysis: figure functions, notebooks and the `lcsim report` command."""

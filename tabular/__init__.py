"""tabular: the learning-curve table format, its writer, validator and read API."""

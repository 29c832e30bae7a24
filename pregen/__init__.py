"""pregen: the trainer stack (data, search spaces, models, trainer) and table generation."""

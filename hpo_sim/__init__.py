"""hpo_sim: HPO methods, replayed against tables (replay) or trained live (live)."""

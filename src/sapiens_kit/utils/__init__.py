"""Small helpers for the command-line apps."""

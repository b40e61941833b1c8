"""Joint image + target transforms, one module per target kind."""

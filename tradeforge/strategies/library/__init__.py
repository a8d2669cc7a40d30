"""Ready-made strategies composed from the built-in mixins."""

"""image backends."""

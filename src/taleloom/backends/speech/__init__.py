"""speech backends."""

"""vision backends."""

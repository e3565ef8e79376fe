"""Model backends behind small interfaces (see base.py), found by name in the registry."""

"""Pipeline stages: plain functions from typed inputs to typed outputs, backends injected (no files, no HTTP)."""

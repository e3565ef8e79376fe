"""Taleloom: photo → illustrated, translated, narrated storybook, with its own diffusion engine."""

__version__ = "0.1.0"

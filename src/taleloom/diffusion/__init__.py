"""Taleloom's own diffusion engine: schedules, U-Net, training, samplers, editing (DESIGN.md §3)."""

"""Click parameter types more than one command shares."""

from __future__ import annotations

import click

from taleloom.book import SEED_MAX, STEPS_MAX

SEED = click.IntRange(0, SEED_MAX)  # a seed out of this range is a clear usage error, not an overflow deep in torch
STEPS = click.IntRange(1, STEPS_MAX)  # the one bound on denoising steps (book.STEPS_MAX)

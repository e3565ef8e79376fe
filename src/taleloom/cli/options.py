"""Click parameter types more than one command shares."""

from __future__ import annotations

import click

from taleloom.book import SEED_MAX, STEPS_MAX

SEED = click.IntRange(0, SEED_MAX)  # a seed out of this range is a clear usage error, not an overflow deep in torch
STEPS = click.IntRange(1, STEPS_MAX)  # the one bound on denoising steps (book.STEPS_MAX)


def brief_bounds(name: str) -> str:
    """'1-24', 'more than 0, up to 1', '0 or more' for a numeric Brief field; '' for others."""
    from taleloom.book import Brief

    meta = Brief.model_fields[name].metadata
    ge, gt, le = (next((getattr(m, k) for m in meta if getattr(m, k, None) is not None), None) for k in ("ge", "gt", "le"))
    if name == "seed" or (ge is None and gt is None and le is None):
        return ""
    if gt is not None:
        return f"more than {gt}, up to {le}" if le is not None else f"more than {gt}"
    return f"{ge}-{le}" if le is not None else f"{ge} or more"


def brief_option(name: str, *, help: str | None = None):  # noqa: A002
    """The click option for the Brief's field `name` (`--top-p` for top_p): its type, default, bounds and
    help come from the Brief, so the CLI, the API form (BookCreate) and the manifest take the same brief.
    Out-of-range values reach the Brief, whose refusal `tell.brief_from` turns into one clear error."""
    import types
    import typing

    from taleloom.book import Brief

    field = Brief.model_fields[name]
    kind = next((a for a in typing.get_args(field.annotation) if a is not type(None)), field.annotation) \
        if isinstance(field.annotation, types.UnionType) else field.annotation
    ptype = SEED if name == "seed" else kind if kind in (int, float) else click.STRING
    text = help or field.description or name
    if bounds := brief_bounds(name):
        text += f" ({bounds})"
    return click.option(f"--{name.replace('_', '-')}", name, type=ptype, default=field.default,
                        show_default=field.default is not None, help=text)

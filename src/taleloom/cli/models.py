"""`taleloom models`: every registered backend, which one each role uses, and whether it is ready.

The backends in use are created and asked `ready()`; the others are only imported (asking them could
mean loading big weights or calling a server nobody configured)."""

from __future__ import annotations

import json

import click

from taleloom.backends import registry
from taleloom.config import get_settings


def _reason(e: Exception) -> str:
    msg = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
    return " ".join(str(msg).split())[:200]


def check(role: str, spec: str, device: str | None = None) -> tuple[bool, str]:
    """(ready, reason) for the backend a role uses; one that cannot even be created is not ready."""
    try:
        return registry.create(role, spec, default_device=device).ready()
    except Exception as e:  # a missing package, folder or server: report it, never crash the listing
        return False, _reason(e)


def importable(entry: registry.Entry) -> tuple[bool, str]:
    """Whether a backend not in use could be chosen: its module and class import."""
    if entry.target is None:
        return True, "registered by a plugin"
    try:
        entry.load()
    except Exception as e:
        return False, _reason(e)
    return True, f"installed; not in use (TALELOOM_{entry.role.upper()}={entry.name}[:location])"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def models(as_json):
    """List the model backends, the ones in use, and whether each is ready."""
    settings = get_settings()
    rows = []
    for entry in registry.available():
        spec = getattr(settings, entry.role)
        in_use = registry.Spec.parse(spec).name == entry.name
        ok, why = check(entry.role, spec, settings.device) if in_use else importable(entry)
        rows.append({"role": entry.role, "name": entry.name, "in_use": in_use, "spec": spec if in_use else None,
                     "ready": ok, "status": why, "description": entry.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for col in ("role", "backend", "in use", "ready", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        ready = "[green]yes[/]" if r["ready"] else "[red]no[/]"
        table.add_row(r["role"], r["name"], r["spec"] or "", ready, r["status"])
    Console().print(table)

"""Taleloom command line. Each command family lives in its own module and is imported lazily,
so `taleloom --help` is instant and one broken optional backend cannot break every command."""

from __future__ import annotations

import importlib
import sys

import click

from taleloom.errors import TaleloomError

# command name → "module:attribute"
COMMANDS = {
    "tell": "taleloom.cli.tell:tell",
    "caption": "taleloom.cli.steps:caption",
    "write": "taleloom.cli.write:write",
    "draw": "taleloom.cli.draw:draw",
    "narrate": "taleloom.cli.steps:narrate",
    "book": "taleloom.cli.book:book",
    "models": "taleloom.cli.models:models",
    "engine": "taleloom.cli.engine:engine",
    "serve": "taleloom.cli.serve:serve",
    "worker": "taleloom.cli.worker:worker",
    "token": "taleloom.cli.serve:token",
    "ray": "taleloom.cli.ray:ray",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:  # a command whose module is missing: explain instead of crashing
            why = str(e)  # `e` itself is unbound once the except block ends

            @click.command(name=name, help=f"(unavailable: {why})")
            def unavailable():
                raise click.ClickException(f"'{name}' is unavailable: {why}")

            return unavailable


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="taleloom")
def cli() -> None:
    """Taleloom turns a photo into an illustrated, translated, narrated storybook.

    Start with `taleloom tell PHOTO`. Each step also runs on its own (caption, write, draw,
    narrate), `taleloom engine` trains and samples our diffusion models, `taleloom serve`
    starts the HTTP API and web page, and `taleloom worker` makes books beside API processes.
    Settings: taleloom.toml < TALELOOM_* env < flags.
    """


def main() -> None:
    """Console entry point: user errors print as one clear message, never a stack trace."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except TaleloomError as e:
        click.secho(f"Error: {e}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted; finished stages are saved (resume with --resume).", err=True)
        sys.exit(130)
    except OSError as e:  # a folder that is a file, no permission, a full disk: the path says what to fix
        where = f" ({e.filename})" if e.filename else ""
        click.secho(f"Error: {e.strerror or e}{where}", fg="red", err=True)
        click.echo("  → check the path and its permissions, and that the disk has room", err=True)
        sys.exit(1)
    except SystemExit:
        raise

"""`taleloom serve` (the HTTP API and web page) and `taleloom token` (bearer tokens for it)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import click

from taleloom.config import get_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0 for all)")
@click.option("--port", default=8000, show_default=True, type=int, help="port to listen on")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="books and database folder [TALELOOM_DATA_DIR]")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="books this process makes at once; 0: an API process only, books are made by "
                   "`taleloom worker` processes (needs PostgreSQL) [TALELOOM_WORKERS; default 2]")
@click.option("--base-url", default=None,
              help="public URL the QR codes point at [TALELOOM_BASE_URL; default http://HOST:PORT]")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str, port: int, data_dir: Path | None, workers: int | None, base_url: str | None,
          log_level: str) -> None:
    """Start the HTTP API (OpenAPI docs at /docs) and the web page (at /).

    Books, jobs and tokens live in the data folder (SQLite) or in PostgreSQL when
    TALELOOM_DATABASE_URL is set. Unfinished books resume when the server starts again.
    Make a token first: `taleloom token create`.

    \b
    One process (the default): this server makes the books too, with --workers threads.
    Many processes (PostgreSQL): any number of API processes and `taleloom worker` processes on one
    database and one data folder; a book is made once, by whichever worker claims it, and any API
    process streams its events:
      export TALELOOM_DATABASE_URL=postgresql://taleloom@127.0.0.1/taleloom TALELOOM_DATA_DIR=/srv/taleloom
      taleloom serve --workers 0 --port 8000 &   # API processes: no books made here
      taleloom serve --workers 0 --port 8001 &
      taleloom worker &                          # worker processes (see `taleloom worker --help`)
      taleloom worker &
    """
    import uvicorn

    from taleloom.server.app import create_app
    from taleloom.server.service import open_store, require_postgres
    from taleloom.server.slowclients import timed_h11

    settings = get_settings(data_dir=data_dir, workers=workers, base_url=base_url)
    if settings.workers == 0:
        require_postgres(settings, "an API process without workers (--workers 0)")
    open_store(settings).close()  # a database that cannot be reached is one clear line, before anything starts
    if "base_url" not in settings.model_fields_set:  # nobody chose one: the address we listen on
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings = settings.model_copy(update={"base_url": f"http://{shown}:{port}"})
        if shown != host:
            click.echo(f"QR codes will point at {settings.base_url}; give --base-url with the address phones "
                       "can reach (e.g. http://192.168.1.20:8000)", err=True)
    click.echo(f"Taleloom on http://{host}:{port}  (docs /docs, data {settings.data_dir}, "
               + (f"{settings.workers} worker(s))" if settings.workers else "API only: books are made by "
                  "`taleloom worker` processes)"), err=True)
    sock = listen(host, port)  # before anything starts: a server that cannot listen claims no job
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=5,
                            http=timed_h11(settings.header_timeout, settings.body_timeout))
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound now; a port in use is a clear error, not a half-started server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket
    # says it is TCP, and an accepted socket inherits this one's proto. With Nagle on, a response written as
    # headers + body could wait for the client's delayed ACK: ~40 ms added to a small answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e} "
                                   "(another server on that port? choose another with --port)") from None
    sock.set_inheritable(True)
    return sock


@click.group()
def token() -> None:
    """Bearer tokens for the HTTP API. Only a hash of each token is stored."""


def _store(data_dir: Path | None):
    from taleloom.server.store import Store

    return Store.from_settings(get_settings(data_dir=data_dir))


@token.command("create")
@click.option("--name", default=None, help="user name; tokens with the same name share that user's books")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[TALELOOM_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help='print {"token": ..., "user": ...}')
def token_create(name: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Make a new token (printed once: keep it)."""
    store = _store(data_dir)
    secret, user = store.create_token(name)
    store.close()
    if as_json:
        click.echo(json.dumps({"token": secret, "user": user.name}))
    else:
        click.echo(secret)
        click.echo(f"(for user {user.name}; send it as 'Authorization: Bearer <token>')", err=True)


@token.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[TALELOOM_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def token_list(data_dir: Path | None, as_json: bool) -> None:
    """List tokens by their first characters (the tokens themselves are not stored)."""
    store = _store(data_dir)
    rows = [{"hint": t.hint + "…", "user": u.name, "created": t.created, "revoked": t.revoked}
            for t, u in store.list_tokens()]
    store.close()
    if as_json:
        click.echo(json.dumps(rows))
    else:
        for r in rows:
            click.echo(f"{r['hint']:12} {r['user']:20} {r['created']}  {'revoked' if r['revoked'] else ''}")


@token.command("revoke")
@click.argument("token_or_hint")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="[TALELOOM_DATA_DIR]")
def token_revoke(token_or_hint: str, data_dir: Path | None) -> None:
    """Revoke a token, given whole or by the first characters `token list` shows."""
    store = _store(data_dir)
    n = store.revoke_token(token_or_hint.rstrip("…"))
    store.close()
    if not n:
        raise click.ClickException(f"no open token matches {token_or_hint!r} (see `taleloom token list`)")
    click.echo(f"revoked {n} token(s)")

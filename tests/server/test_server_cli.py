"""`taleloom token` and `taleloom serve` from the command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from taleloom.cli import cli
from taleloom.server.store import Store, database_url


def test_token_create_json_list_revoke(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["token", "create", "--name", "ann", "--json", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    token = json.loads(r.stdout)["token"]
    store = Store(database_url(None, tmp_path))
    assert store.user_for_token(token).name == "ann"
    listed = json.loads(runner.invoke(cli, ["token", "list", "--json", "--data-dir", str(tmp_path)]).stdout)
    assert listed[0]["user"] == "ann" and token not in json.dumps(listed)
    r = runner.invoke(cli, ["token", "revoke", listed[0]["hint"], "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and store.user_for_token(token) is None
    r = runner.invoke(cli, ["token", "revoke", "tl_nothing", "--data-dir", str(tmp_path)])
    assert r.exit_code != 0 and "token list" in r.output
    store.close()


def test_serve_help():
    r = CliRunner().invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0 and "--port" in r.output and "--host" in r.output


def test_serve_answers_without_nagle_delays():
    """`taleloom serve` binds its socket itself; the connections it accepts must have Nagle off
    (TCP_NODELAY), or an answer written as headers + body waits for the client's delayed ACK (~40 ms)."""
    import asyncio
    import socket

    from taleloom.cli.serve import listen

    sock = listen("127.0.0.1", 0)
    sock.listen()

    async def accepted_nodelay() -> int:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(_reader, writer):
            got.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)  # as uvicorn serves `sockets=[sock]`
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            value = await asyncio.wait_for(got, 10)
            writer.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0

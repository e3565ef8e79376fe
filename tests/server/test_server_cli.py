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

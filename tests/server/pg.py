"""Start a throwaway PostgreSQL server on loopback for tests (Debian's postgresql package: initdb +
pg_ctl from /usr/lib/postgresql/*/bin). As root, the server runs as the `postgres` user."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from serverkit import free_port


class PostgresUnavailable(Exception):
    """Why no server could be started (the tests skip with this reason)."""


class Postgres:
    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
        if not bins:
            raise PostgresUnavailable("PostgreSQL is not installed (Debian package 'postgresql'; `make install` adds it)")
        self.bindir = Path(bins[-1]).parent
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                self.pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server as") from None
        self.base = Path(tempfile.mkdtemp(prefix="taleloom-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://taleloom@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        if out.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {(out.stderr or out.stdout).strip()[-500:]}")

    def start(self) -> Postgres:
        if self.as_root:
            os.chown(self.base, self.pw.pw_uid, self.pw.pw_gid)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "taleloom", "-E", "UTF8",
                  "--no-sync")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        return self

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except PostgresUnavailable:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

"""A throwaway PostgreSQL server for the suite: a cluster made in a temporary folder, on loopback, stopped at
the end. Debian's binaries, run as the `postgres` user when the suite runs as root (initdb refuses root).

`RELAY_TEST_DATABASE_URL` names a server to use instead (a user that may create databases): no cluster is
made then. Either way each test gets a database of its own.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from tests.bot_process import free_port

_databases = itertools.count(1)


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's binaries are missing: run `bash tests/postgres/install.sh` (make test does)")
    return Path(found[-1]).parent


class Cluster:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="relay-pg-"))
        self.port = free_port()
        self.bin = _binaries()
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=120, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        data = self.folder / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.resume()

    def resume(self) -> None:
        """Start the server (again). fsync is off: the suite kills bots and stops the server, never the
        machine, and what a stopped server wrote is in the OS's hands."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB"
        )
        self._pg_ctl("start", "-w", "-o", options, "-l", str(self.folder / "server.log"))

    def halt(self) -> None:
        """Stop the server as an operator would for maintenance: every connection is cut."""
        self._pg_ctl("stop", "-m", "fast", "-w")

    def _pg_ctl(self, *arguments: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), *arguments)

    def stop(self) -> None:
        try:
            self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server; dropped afterwards."""
    name = f"relay_test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())

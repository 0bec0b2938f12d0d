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
import time
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
        self.runs_as: list[str] = []  # initdb, the server and PgBouncer all refuse to run as root
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.runs_as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.runs_as, *command], capture_output=True, text=True, timeout=120, cwd=self.folder)
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


class Bouncer:
    """PgBouncer in transaction mode in front of a cluster, as Heroku's connection pooling and most managed
    PostgreSQL offers put it: a server connection is a client's only for one transaction."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"

    def start(self) -> None:
        folder = self.cluster.folder
        (folder / "userlist.txt").write_text('"postgres" ""\n')
        (folder / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={self.cluster.port}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir = {folder}\n"
            f"auth_type = trust\nauth_file = {folder}/userlist.txt\npool_mode = transaction\n"
            "default_pool_size = 10\nmax_client_conn = 200\nadmin_users = postgres\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        if self.cluster.runs_as:
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(folder / name, "postgres", "postgres")
        self.process = subprocess.Popen(
            [*self.cluster.runs_as, shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", str(folder / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                psycopg.connect(self.admin_url, autocommit=True).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise RuntimeError("PgBouncer did not start")

    def transactions(self) -> int:
        """How many transactions PgBouncer has passed on, from its admin console (simple queries only)."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            cursor = psycopg.ClientCursor(admin)
            cursor.execute("SHOW STATS")
            columns = [column.name for column in cursor.description or ()]
            return sum(int(row[columns.index("total_xact_count")]) for row in cursor.fetchall())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

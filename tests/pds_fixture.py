"""A real atproto PDS (the reference implementation, from npm's @atproto/dev-env) on loopback, for Bluesky tests.

Use the session-scoped ``pds`` fixture (import it into a conftest.py or test module):

    from tests.pds_fixture import pds  # noqa: F401

    async def test_post(pds: Pds) -> None:
        account = pds.accounts[0]          # or pds.account("ceo.test")
        ...  # XRPC over HTTP at pds.url, logging in with account.handle / account.app_password

The PDS starts once per test run (~3 s) and is shared, so tests must not assume empty repos. ``running_pds()``
starts a private one (e.g. for a test that needs its own accounts). Needs ``tests/pds/install.sh`` to have run:
without it the fixture fails, with that instruction, rather than skipping.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PDS_DIR = Path(__file__).parent / "pds"
SERVE = PDS_DIR / "serve.mjs"
STAMP = PDS_DIR / "node_modules" / ".relay-install-stamp"
DEFAULT_HANDLES = ("newsroom.test", "ceo.test")
START_TIMEOUT = 60.0


class PdsUnavailable(Exception):
    """The local PDS is not installed, or did not start."""


@dataclass(frozen=True)
class PdsAccount:
    handle: str
    did: str
    password: str  # the account's main password
    app_password: str  # an app password ("xxxx-xxxx-xxxx-xxxx") made for it, as a relay would be given
    email: str


@dataclass(frozen=True)
class Pds:
    url: str  # http://127.0.0.1:PORT, XRPC at {url}/xrpc/<nsid>
    plc_url: str  # the PLC directory the accounts' did:plc are registered with
    public_url: str  # the PDS's own idea of its URL (http://localhost:PORT), as in DID documents
    admin_password: str  # HTTP Basic "admin:<this>" for com.atproto.admin.* endpoints
    jwt_secret: str  # the HS256 secret of its access/refresh JWTs (to forge an expired token in a test)
    accounts: tuple[PdsAccount, ...]

    def account(self, handle: str) -> PdsAccount:
        for account in self.accounts:
            if account.handle == handle:
                return account
        raise KeyError(handle)


def _check_installed() -> str:
    node = shutil.which("node")
    if node is None:
        raise PdsUnavailable("node is not installed: the Bluesky tests need Node >= 20 for the local PDS")
    lock_hash = hashlib.sha256((PDS_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or not STAMP.read_text().startswith(lock_hash):
        raise PdsUnavailable(
            "the local PDS for the Bluesky tests is not installed (or tests/pds/package-lock.json changed since): "
            "run `bash tests/pds/install.sh`"
        )
    return node


@contextmanager
def running_pds(handles: tuple[str, ...] = DEFAULT_HANDLES, timeout: float = START_TIMEOUT) -> Iterator[Pds]:
    """Start tests/pds/serve.mjs, wait for its JSON line, yield it as a ``Pds``, stop the process on exit.

    Handles must be one label plus ".test", 3 to 18 characters before it, and not on the PDS's reserved list
    (e.g. "company.test" is refused as reserved).
    """
    node = _check_installed()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [node, str(SERVE), *handles],
            cwd=PDS_DIR,
            stdin=subprocess.PIPE,  # serve.mjs exits when this closes, so it cannot outlive us
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = _read_line(proc, timeout)
            if not line:
                proc.wait(timeout=10)
                stderr.seek(0)
                said = stderr.read().decode(errors="replace")[-4000:]
                raise PdsUnavailable(f"tests/pds/serve.mjs exited with {proc.returncode} before it was ready:\n{said}")
            yield _parse(line)
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line of proc's stdout, blocking at most ``timeout`` seconds; b"" if stdout closed first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise PdsUnavailable(f"tests/pds/serve.mjs printed no JSON line within {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            data += chunk
    return data.split(b"\n", 1)[0]


def _parse(line: bytes) -> Pds:
    info = json.loads(line)
    return Pds(
        url=info["pds"],
        plc_url=info["plc"],
        public_url=info["pds_public_url"],
        admin_password=info["admin_password"],
        jwt_secret=info["jwt_secret"],
        accounts=tuple(
            PdsAccount(
                handle=a["handle"],
                did=a["did"],
                password=a["password"],
                app_password=a["app_password"],
                email=a["email"],
            )
            for a in info["accounts"]
        ),
    )


@pytest.fixture(scope="session")
def pds() -> Iterator[Pds]:
    """One local PDS for the whole test run, with the accounts newsroom.test and ceo.test."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_pds())
        except PdsUnavailable as e:
            raise pytest.fail.Exception(str(e), pytrace=False) from None
        yield server

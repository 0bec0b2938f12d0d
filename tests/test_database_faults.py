"""The database in trouble: the disk full, the file read-only, a crash inside a transaction, two bots on it.

The bot runs as `python bot.py`, as an operator runs it, against the fake Slack and X. Every fault is real
to its process: its writes fail with the errors the kernel gives (a file-size limit, a full tmpfs, a
read-only mount), it is killed while it holds SQLite's write lock, a second process is started on its
file. Nothing of ours is mocked. What is checked is what people would check: the leader's answer in
Slack, the posts in each channel, the live report, the audit trail, the log and the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import random
import resource
import shlex
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import aiohttp
import pytest

from tests.bot_process import BotProcess, free_port
from tests.conftest import LEADER, STAFF_CHANNEL, Relay, bot_env, config_text, preview_id
from tests.fakes import FakeSlack, FakeX, Fault
from tests.proof import tally

FAULT = "database faults injected (disk full, read-only, mid-transaction crash, second process)"
SURVIVED = "crashes survived with nothing lost or doubled"
QUIET = 1.5  # seconds the bot is watched doing nothing while its disk is full
CRASH_CHANNELS = 12  # Slack channels of the broadcast killed mid-transaction: many short transactions


def unshare(*script: str) -> tuple[str, ...]:
    """Run the bot in its own user and mount namespaces (no privileges needed where the kernel allows
    unprivileged user namespaces), after `script` (sh, with the bot's command line as "$@")."""
    script = " && ".join((*script, 'exec "$@"'))
    return ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "relay-bot")  # $0, then "$@"


@pytest.fixture(scope="module")
def namespaces() -> None:
    """Skip, saying why, where this machine cannot give the bot a mount of its own."""
    try:
        probe = subprocess.run(unshare("mount -t tmpfs probe /mnt"), capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        pytest.skip("`unshare` (util-linux) is not installed: cannot give the bot a disk of its own")
    if probe.returncode != 0:
        pytest.skip(f"this kernel refuses unprivileged user and mount namespaces: {probe.stderr.strip()}")


class Disk(Protocol):
    """Where the bot keeps its database, and how that disk is filled and freed under the running bot."""

    db: Path
    prefix: tuple[str, ...]
    error: str  # what SQLite says when the disk refuses a write

    def fill(self, pid: int) -> None: ...

    def free(self, pid: int) -> None: ...


class FileSizeLimit:
    """RLIMIT_FSIZE lowered to 0 on the running bot: the kernel refuses its every write() to a file with
    EFBIG, as a disk with no byte left would, and SQLite says "disk I/O error" (SQLITE_IOERR_WRITE). No
    privileges needed; Python ignores SIGXFSZ, so the write fails instead of killing the process."""

    prefix: tuple[str, ...] = ()
    error = "disk I/O error"

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "relay.db"

    def fill(self, pid: int) -> None:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))

    def free(self, pid: int) -> None:
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


class SmallTmpfs:
    """A 4 MiB tmpfs over the database's folder, in the bot's own mount namespace, filled to the last page
    by a file written through /proc/<pid>/root: the kernel says ENOSPC, SQLite "database or disk is full"
    (SQLITE_FULL). Deleting the file gives the space back."""

    error = "database or disk is full"

    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "disk"
        self.folder.mkdir()
        self.db = self.folder / "relay.db"
        self.prefix = unshare(f"mount -t tmpfs -o size=4m relay-disk {shlex.quote(str(self.folder))}")

    def _filler(self, pid: int) -> Path:
        return Path(f"/proc/{pid}/root{self.folder}/filler")

    def fill(self, pid: int) -> None:
        fd = os.open(self._filler(pid), os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            while True:
                os.write(fd, bytes(1 << 16))
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)

    def free(self, pid: int) -> None:
        self._filler(pid).unlink()


@pytest.fixture(params=["file-size-limit", "full-tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Disk:
    if request.param == "file-size-limit":
        return FileSizeLimit(tmp_path)
    request.getfixturevalue("namespaces")
    return SmallTmpfs(tmp_path)


@contextlib.asynccontextmanager
async def running(process: BotProcess, slack: FakeSlack) -> AsyncIterator[Relay]:
    """The bot started, driven over HTTP the way Slack drives it, and stopped after."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            await process.start()
            yield Relay(f"http://127.0.0.1:{process.env['PORT']}", slack, http)
        finally:
            await process.stop()


async def health(relay: Relay) -> tuple[int, str | None]:
    """What `/healthz` answers, and what it says of the database."""
    async with relay.http.get(f"{relay.url}/healthz") as answer:
        return answer.status, (await answer.json()).get("database")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text_of(answer: dict[str, object]) -> str:
    """Everything Slack would show of an answer, lower-cased."""
    return json.dumps(answer).lower()


async def report_of(relay: Relay, broadcast_id: str, timeout: float = 15.0) -> str:
    """The broadcast's live report in the leader's DM, once every delivery in it is final."""

    def final() -> str | None:
        for message in relay.slack.messages(f"D{LEADER}"):
            text = str(message.get("text", ""))
            if broadcast_id in text and text.endswith("delivered."):
                return text
        return None

    return await relay.slack.wait_for(final, timeout)


def posts(slack: FakeSlack, x: FakeX, channel: str, text: str) -> tuple[int, int]:
    """How many times `text` went out: in the Slack channel, and on X."""
    return (
        sum(message["text"] == text for message in slack.messages(channel)),
        sum(tweet.text == text for tweet in x.tweets),
    )


async def test_a_full_disk_sends_nothing_unapproved_answers_clearly_and_catches_up_by_itself(
    disk: Disk, tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    env = {**bot_env(tmp_path, slack, x, config_text()), "RELAY_DB": str(disk.db), "PORT": str(free_port())}
    process = BotProcess(env, prefix=disk.prefix)
    async with running(process, slack) as relay:
        # Both networks take the post and hold their answer: it is in flight when the disk fills.
        slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p: p.get("channel") == STAFF_CHANNEL)
        x.faults.add("POST /2/tweets", Fault.hang())
        in_flight = preview_id(await relay.command(LEADER, "In flight when the disk fills."))
        await relay.click(LEADER, "approve", in_flight)
        await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))
        await x.wait_for(lambda: x.tweets)
        drafted = preview_id(await relay.command(LEADER, "Drafted before the disk fills."))

        disk.fill(process.pid)
        tally(FAULT)
        slack.release()  # the posts' answers come back: the bot must write them down, and cannot yet
        x.release()
        assert disk.error in await process.wait_for_log("cannot write")  # said once, with the file, for the operator

        ack = text_of(await relay.command(LEADER, "Typed while the disk is full."))
        assert "could not save" in ack and "nothing was sent" in ack, ack
        approval = text_of(await relay.answer(await relay.click(LEADER, "approve", drafted)))
        assert "could not save" in approval and "nothing was sent" in approval, approval
        assert await health(relay) == (503, "refusing writes (disk full or read-only)")  # for the operator's probe

        # Waiting for space, it neither spins nor floods its log, and stays up.
        cpu, lines = cpu_seconds(process.pid), len(process.log)
        await asyncio.sleep(QUIET)  # watching it idle: there is nothing to await
        assert cpu_seconds(process.pid) - cpu < QUIET / 5, "it must not busy-loop while the disk is full"
        assert len(process.log) - lines <= 2, "".join(process.log[lines:])
        assert process.process is not None and process.process.returncode is None
        assert len(slack.messages(STAFF_CHANNEL)) == 1 and len(x.tweets) == 1

        disk.free(process.pid)
        assert "2 of 2 delivered." in await report_of(relay, in_flight)
        await relay.click(LEADER, "approve", drafted)  # the refused approval can simply be given again
        assert "2 of 2 delivered." in await report_of(relay, drafted)
        assert await health(relay) == (200, None)

    for text in ("In flight when the disk fills.", "Drafted before the disk fills."):
        assert posts(slack, x, STAFF_CHANNEL, text) == (1, 1), text
    assert posts(slack, x, STAFF_CHANNEL, "Typed while the disk is full.") == (0, 0)


def read_only_mount(folder: Path) -> tuple[str, ...]:
    """The database's folder bind-mounted read-only over itself: what the bot meets when a volume is
    mounted read-only, or the kernel remounts a failing disk so. Root inside the namespace cannot write
    it either, unlike a chmod, which root ignores."""
    quoted = shlex.quote(str(folder))
    return unshare(f"mount --bind {quoted} {quoted}", f"mount -o remount,bind,ro {quoted}")


async def test_a_read_only_database_stops_the_bot_with_the_fix_and_no_accepted_broadcast_is_lost(
    namespaces: None, tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "relay.db"
    env = {**bot_env(tmp_path, slack, x, config_text()), "RELAY_DB": str(db), "PORT": str(free_port())}
    x.faults.add("POST /2/tweets", x.rate_limited(reset_in=3))
    process = BotProcess(env)
    async with running(process, slack) as relay:
        accepted = preview_id(await relay.command(LEADER, "Accepted before the disk went read-only."))
        await relay.click(LEADER, "approve", accepted)
        await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))
        await slack.wait_for(
            lambda: any("retrying" in str(c.params.get("blocks")) for c in slack.calls_to("chat.update"))
        )

    refused = BotProcess(env, prefix=read_only_mount(folder))
    assert await refused.exits() == 2
    tally(FAULT)
    said = [line for line in "".join(refused.log).splitlines() if line.strip()]
    assert len(said) == 1, said
    assert said[0].startswith("relay cannot start:") and str(db) in said[0], said
    assert "read-only" in said[0].lower() and "RELAY_DB" in said[0], said

    async with running(process, slack) as relay:  # writable again: the accepted broadcast goes out, once
        assert "2 of 2 delivered." in await report_of(relay, accepted)
    assert posts(slack, x, STAFF_CHANNEL, "Accepted before the disk went read-only.") == (1, 1)


def started(slack: FakeSlack, text: str) -> bool:
    return any(message["text"] == text for n in range(CRASH_CHANNELS) for message in slack.messages(f"C0CRASH{n:02d}"))


def crash_config(channels: int) -> str:
    """One broadcast to many Slack channels and X: many short write transactions to be killed inside."""
    names = [f"staff-{n:02d}" for n in range(channels)]
    destinations = "".join(
        f'[destinations.{name}]\nkind = "slack"\nchannel = "C0CRASH{n:02d}"\n\n' for n, name in enumerate(names)
    )
    return (
        '[policy]\nleaders = ["slack:U0LEAD"]\ndefault_audience = "everyone"\n\n'
        f'{destinations}[destinations.company-x]\nkind = "x"\n\n'
        f"[audiences]\neveryone = {json.dumps([*names, 'company-x'])}\n"
    )


@contextlib.contextmanager
def reading(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection of the test's own, that never waits for the bot's locks."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def holds_write_lock(db: Path) -> bool:
    """Whether the (stopped) bot is inside a write transaction: only then is BEGIN IMMEDIATE refused."""
    with reading(db) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error), error
            return True
        conn.execute("ROLLBACK")
        return False


async def stopped(pid: int) -> None:
    """Until every thread of the process has taken SIGSTOP (polled: the kernel offers nothing to await)."""
    tasks = Path(f"/proc/{pid}/task")
    while not all((task / "stat").read_text().rsplit(")", 1)[1].split()[0] in "tT" for task in tasks.iterdir()):
        await asyncio.sleep(0.001)


def unfinished(db: Path, broadcast_id: str) -> int:
    with reading(db) as conn:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE broadcast_id = ? AND state IN ('pending', 'sending')",
                (broadcast_id,),
            ).fetchone()[0]
        )


async def kill_inside_a_write(process: BotProcess, db: Path, broadcast_id: str, skip: int) -> bool:
    """Freeze the bot again and again while it sends; the `skip + 1`th time it is frozen holding SQLite's
    write lock, SIGKILL it there (letting the first ones go lands the kills at different points of the
    broadcast: claiming, recording a post, finishing). False if the broadcast finished first."""
    while unfinished(db, broadcast_id):
        os.kill(process.pid, signal.SIGSTOP)
        await stopped(process.pid)
        if holds_write_lock(db):
            if not skip:
                await process.kill()
                return True
            skip -= 1
        os.kill(process.pid, signal.SIGCONT)
        await asyncio.sleep(random.uniform(0, 0.005))  # let it run on to a new, random point
    return False


def check_after_crash(db: Path, slack: FakeSlack, x: FakeX, broadcast_id: str, text: str, report: str) -> None:
    """Each destination posted once, or shown as unknown where its fate cannot be proven, and the audit
    trail saying exactly what the deliveries say."""
    with reading(db) as conn:
        deliveries = conn.execute(
            "SELECT destination, state FROM deliveries WHERE broadcast_id = ? AND action = 'post'", (broadcast_id,)
        ).fetchall()
        trail = conn.execute("SELECT action, detail FROM audit WHERE broadcast_id = ?", (broadcast_id,)).fetchall()
    assert [row["action"] for row in trail].count("approved") == 1
    sent_in_trail = sorted(row["detail"].split(":")[0] for row in trail if row["action"] == "sent")
    assert sent_in_trail == sorted(row["destination"] for row in deliveries if row["state"] == "sent")
    assert len(deliveries) == CRASH_CHANNELS + 1
    for row in deliveries:
        if row["destination"] == "company-x":
            count = sum(tweet.text == text for tweet in x.tweets)
        else:
            channel = f"C0CRASH{row['destination'].removeprefix('staff-')}"
            count = sum(message["text"] == text for message in slack.messages(channel))
        assert row["state"] in ("sent", "unknown"), (row["destination"], row["state"])
        assert count == 1 if row["state"] == "sent" else count <= 1, (row["destination"], count)
    unknown = sum(row["state"] == "unknown" for row in deliveries)
    assert f"{len(deliveries) - unknown} of {len(deliveries)} delivered." in report


async def test_killed_inside_a_write_transaction_the_restarted_bot_loses_and_doubles_nothing(
    tmp_path: Path, slack: FakeSlack, x: FakeX, proof_scale: str
) -> None:
    db = tmp_path / "relay.db"
    process = BotProcess({**bot_env(tmp_path, slack, x, crash_config(CRASH_CHANNELS)), "PORT": str(free_port())})
    sent: list[tuple[str, str]] = []
    async with running(process, slack) as relay:
        for round_ in range(20 if proof_scale == "large" else 1):
            killed = False
            while not killed:
                text = f"Crash round {round_}, broadcast {len(sent)}."
                broadcast = preview_id(await relay.command(LEADER, text))
                await relay.click(LEADER, "approve", broadcast)
                sent.append((broadcast, text))
                await slack.wait_for(functools.partial(started, slack, text))  # approved, and going out
                killed = await kill_inside_a_write(process, db, broadcast, skip=random.randrange(8))
            tally(FAULT)
            await process.start()
            for broadcast, text in sent:
                check_after_crash(db, slack, x, broadcast, text, await report_of(relay, broadcast))
            tally(SURVIVED)


async def test_a_second_bot_on_the_database_sends_nothing_and_a_new_one_takes_over_from_a_dead_one(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    db = tmp_path / "relay.db"
    env = {**bot_env(tmp_path, slack, x, config_text()), "PORT": str(free_port())}
    # Mid-broadcast: the Slack post in flight, X told to wait.
    slack.faults.add("chat.postMessage", Fault.hang(), when=lambda p: p.get("channel") == STAFF_CHANNEL)
    x.faults.add("POST /2/tweets", x.rate_limited(reset_in=2))
    first = BotProcess(env)
    async with running(first, slack) as relay:
        broadcast = preview_id(await relay.command(LEADER, "Only one bot sends this."))
        await relay.click(LEADER, "approve", broadcast)
        await slack.wait_for(lambda: slack.messages(STAFF_CHANNEL))
        await x.wait_for(lambda: x.calls_to("POST /2/tweets"))
        os.kill(first.pid, signal.SIGSTOP)  # frozen: it starts nothing new (a request already on its way may land)
        calls = started_or_posted(slack, x)
        same_file = tmp_path / "same-file.db"
        same_file.symlink_to(db)
        for path in (db, same_file):
            second = BotProcess({**env, "RELAY_DB": str(path), "PORT": str(free_port())})
            assert await second.exits(timeout=15) == 2, "".join(second.log)
            tally(FAULT)
            assert "another bot is already running on" in "".join(second.log)
        assert started_or_posted(slack, x) == calls, "the second bot called a network"

        await first.kill()
        async with running(BotProcess(env), slack):  # the lock died with it: a new bot takes over
            assert "2 of 2 delivered." in await report_of(relay, broadcast)
        tally(SURVIVED)
    assert posts(slack, x, STAFF_CHANNEL, "Only one bot sends this.") == (1, 1)


def started_or_posted(slack: FakeSlack, x: FakeX) -> tuple[int, int, int]:
    """What a second bot would do first (Slack's start-up `auth.test`) and what it must never do (post)."""
    return (
        len(slack.calls_to("auth.test")),
        len([c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == STAFF_CHANNEL]),
        len(x.calls_to("POST /2/tweets")),
    )

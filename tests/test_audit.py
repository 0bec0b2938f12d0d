"""The audit trail: who did what, when and from where; append-only; exportable from the terminal."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from relay import audit
from tests.conftest import APPROVER, DATABASE, LEADER, STAFF_CHANNEL, config_text, preview_id
from tests.fakes import FakeSlack
from tests.proof import tally
from tests.test_abuse import INPUTS
from tests.test_terminal import cli_env, relay_cli


async def test_every_step_is_in_the_trail_and_exports_as_csv_and_json(
    start_relay, slack: FakeSlack, tmp_path: Path
) -> None:
    relay = await start_relay(config_text([f"slack:{APPROVER}"]))
    broadcast = preview_id(await relay.command(LEADER, "Audited"))
    await relay.click(LEADER, "choose_audience", broadcast, selected="staff")
    await relay.click(LEADER, "approve", broadcast)
    await slack.wait_for(lambda: slack.messages(f"D{APPROVER}"))
    await relay.click(APPROVER, "approve", broadcast, block_id=f"approval:{broadcast}")
    await relay.final_report()

    result = relay_cli("audit", "--format", "csv", env=cli_env(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    mine = [(r["actor"], r["action"], r["surface"]) for r in rows if r["broadcast_id"] == broadcast]
    assert mine == [
        (f"slack:{LEADER}", "requested", "slack"),
        (f"slack:{LEADER}", "edited", "slack"),
        (f"slack:{LEADER}", "submitted for approval", "slack"),
        (f"slack:{APPROVER}", "approved", "slack"),
        ("relay", "sent", "relay"),
    ]
    assert rows[0]["action"] == "config-loaded" and "sha256:" in rows[0]["detail"]
    assert next(r for r in rows if r["action"] == "requested")["place"] == "C0CMD"
    assert f"archives/{STAFF_CHANNEL}/p" in next(r for r in rows if r["action"] == "sent")["detail"]

    exported = json.loads(relay_cli("audit", "--format", "json", env=cli_env(tmp_path)).stdout)
    assert [e["action"] for e in exported if e["broadcast_id"] == broadcast] == [a for _, a, _ in mine]
    later = relay_cli("audit", "--since", "2999-01-01", env=cli_env(tmp_path))
    assert list(csv.DictReader(io.StringIO(later.stdout))) == []


async def test_the_trail_cannot_be_edited(start_relay, tmp_path: Path, backend: str) -> None:
    relay = await start_relay()
    await relay.command(LEADER, "Cannot be unsaid")
    for edit in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"):
        if backend == "sqlite":
            with (
                sqlite3.connect(tmp_path / "relay.db") as conn,
                pytest.raises(sqlite3.IntegrityError, match="append-only"),
            ):
                conn.execute(edit)
        else:
            with psycopg.connect(DATABASE["DATABASE_URL"]) as pg, pytest.raises(psycopg.Error, match="append-only"):
                pg.execute(edit.encode())


def test_a_bad_since_date_says_what_it_expects(tmp_path: Path) -> None:
    result = relay_cli("audit", "--since", "last tuesday", env={})
    assert result.returncode == 2 and "is not a date like 2026-11-01" in result.stderr


async def test_a_cell_a_spreadsheet_would_evaluate_is_exported_as_text(start_relay, tmp_path: Path) -> None:
    """A place or a detail can be anyone's words: a leader's channel, a network's error, a sign-in's address."""
    relay = await start_relay()
    formulas = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    store = relay.store
    for formula in formulas:
        await audit.note(store, 1.0, "relay", "tried", audit.Where("terminal", formula), formula)
    result = relay_cli("audit", env=cli_env(tmp_path))
    rows = [r for r in csv.DictReader(io.StringIO(result.stdout)) if r["action"] == "tried"]
    assert len(rows) == len(formulas)
    for row, formula in zip(rows, formulas, strict=True):
        for cell in (row["place"], row["detail"]):
            assert cell.startswith("'") and cell[1] in "=+-@\\", cell
            assert cell[1:] == formula if formula[0] not in "\t\r" else cell[1:3] in ("\\t", "\\r")
    exported = json.loads(relay_cli("audit", "--format", "json", env=cli_env(tmp_path)).stdout)
    assert [e["detail"] for e in exported if e["action"] == "tried"] == formulas, "JSON keeps the words as they are"
    tally(INPUTS, len(formulas))

"""The Teams app package: one command zips the manifest (with the bot's app id) and its two icons."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "11111111-2222-3333-4444-555555555555"


def run(env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "teams" / "package.py"), str(out)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_package_holds_the_manifest_with_the_app_id_and_both_icons(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    result = run({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": APP_ID}, out)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
        commands = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
        assert "broadcast" in commands
        assert png_size(archive.read("color.png")) == (192, 192)  # Teams' required sizes
        assert png_size(archive.read("outline.png")) == (32, 32)


def test_without_an_app_id_it_says_what_to_set(tmp_path: Path) -> None:
    result = run({}, tmp_path / "app.zip")
    assert result.returncode == 2
    assert "Set CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID" in result.stderr
    bad = run({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": "my-bot"}, tmp_path / "app.zip")
    assert bad.returncode == 2 and "is not an app (client) id" in bad.stderr


def microsoft_schema_problems(manifest: Path) -> list[str]:
    """What Microsoft's own Teams app schema (npm @microsoft/app-manifest, bundled, offline) refuses."""
    checker = ROOT / "tests" / "msteams" / "app_manifest.js"
    result = subprocess.run(["node", str(checker), str(manifest)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stderr} (run `bash tests/msteams/install.sh`)"
    problems: list[str] = json.loads(result.stdout)
    return problems


def test_the_package_passes_microsofts_teams_app_schema(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    assert run({"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID": APP_ID}, out).returncode == 0
    with zipfile.ZipFile(out) as archive:
        archive.extract("manifest.json", tmp_path)
    assert microsoft_schema_problems(tmp_path / "manifest.json") == []


def test_the_schema_check_catches_what_teams_refuses_at_upload(tmp_path: Path) -> None:
    manifest = json.loads((ROOT / "teams" / "manifest.json").read_text())
    manifest["id"] = manifest["bots"][0]["botId"] = APP_ID
    manifest["description"]["short"] = "x" * 81
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    [problem] = microsoft_schema_problems(tmp_path / "manifest.json")
    assert problem.startswith("/description/short must NOT have more than 80 characters")

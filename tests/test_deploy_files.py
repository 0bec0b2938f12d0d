"""The deploy files say what the README says: a Heroku app with every variable, an image that runs what the
Procfile runs, and a compose file whose bot reaches its database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# What the platform sets, or what has no meaning there: Heroku gives the port, listens on every interface,
# keeps no disk (so no SQLite file) and its Postgres add-on sets DATABASE_URL.
SET_BY_HEROKU = {"PORT", "HOST", "RELAY_DB", "DATABASE_URL"}


def _readme_variables() -> set[str]:
    table = re.search(r"### Environment\n(.*?)\nRoutes:", (ROOT / "README.md").read_text(), re.S)
    assert table is not None
    names = set()
    for row in table.group(1).splitlines():
        cell = row.split("|")[1] if row.startswith("| `") else ""
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]*?)(?:…)?`", cell))
    return names


def test_app_json_offers_every_variable_the_readme_documents_and_only_those() -> None:
    app = json.loads((ROOT / "app.json").read_text())
    offered = set(app["env"])
    documented = _readme_variables()
    teams = {name for name in offered if name.startswith("CONNECTIONS__SERVICE_CONNECTION__SETTINGS__")}
    assert "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__" in documented and teams, "Teams' variables, by prefix"
    assert documented - SET_BY_HEROKU - {"CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"} == offered - teams
    assert all(entry["description"] for entry in app["env"].values())
    assert [addon["plan"] for addon in app["addons"]] == ["heroku-postgresql"]


def test_the_image_runs_what_the_procfile_runs_with_all_the_code_it_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = json.loads(re.search(r"^CMD (.*)$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert " ".join(command) == (ROOT / "Procfile").read_text().split(":", 1)[1].strip()
    copied = {source for line in re.findall(r"^COPY (.*)$", dockerfile, re.M) for source in line.split()[:-1]}
    assert {"requirements.txt", "bot.py", "adapters/", "relay/"} <= copied
    assert all((ROOT / source).exists() for source in copied)
    assert re.search(r"^USER (?!root)", dockerfile, re.M), "the bot does not run as root"
    assert "/healthz" in re.search(r"^HEALTHCHECK .*$", dockerfile, re.M | re.S).group(0)  # type: ignore[union-attr]


def test_compose_gives_the_bot_its_database_and_waits_for_it() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    db, relay = compose["services"]["db"], compose["services"]["relay"]
    url = relay["environment"]["DATABASE_URL"]
    user, database = db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_DB"]
    assert url == f"postgresql://{user}:${{POSTGRES_PASSWORD}}@db:5432/{database}"
    assert relay["depends_on"]["db"]["condition"] == "service_healthy"
    assert relay["environment"]["RELAY_CONFIG"] == "/config/relay.toml"

"""Zip the Teams app package (manifest.json and its two icons) for upload to Teams.

    CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID=<app id> python teams/package.py [out.zip]

The app's id in the manifest must be the bot's Entra app (client) id, the same one the bot runs with,
so it is taken from the variable the Agents SDK reads rather than written into the file by hand.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP_ID_VARIABLE = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def package(app_id: str, out: Path) -> Path:
    if not GUID.match(app_id):
        raise ValueError(f"{APP_ID_VARIABLE}={app_id!r} is not an app (client) id: copy it from the bot's Entra app")
    manifest = json.loads((HERE / "manifest.json").read_text().replace("{{APP_ID}}", app_id))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        for icon in ("color.png", "outline.png"):
            archive.write(HERE / icon, icon)
    return out


def main() -> int:
    app_id = os.environ.get(APP_ID_VARIABLE, "")
    if not app_id:
        print(f"Set {APP_ID_VARIABLE} to the bot's app (client) id first.", file=sys.stderr)
        return 2
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("dist/broadcast-relay-teams.zip")
    try:
        print(f"Wrote {package(app_id, out)}: upload it in Teams → Apps → Manage your apps → Upload an app.")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the bot checks before it serves anything, shared by `bot.py` and `python -m relay check`, so the
check answers exactly as the bot would start (or refuse to)."""

from __future__ import annotations

from relay.config import LOOPBACK, TEAMS_SETTINGS, Config, ConfigError, Settings
from relay.store import store_for

MIN_SECRET = 16  # a shorter RELAY_STATUS_SECRET is guessable: start-up refuses it


def startup_warnings(settings: Settings, config: Config) -> list[str]:
    """The loud lines an operator must not miss; raises ConfigError where the bot cannot run at all."""
    lines = []
    if config.dry_run:
        source = (
            f"the bundled example config ({settings.config_path.name})"
            if settings.config_is_bundled_example
            else str(settings.config_path)
        )
        lines.append(
            f"DRY RUN: nothing will be posted. Using {source}; every destination is rendered and recorded only. "
            "To go live: copy relay.example.toml to relay.toml, remove `dry_run = true`, and set "
            "SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and the X_* credentials."
        )
    missing = [name for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET") if settings.secret(name) is None]
    if len(missing) == 1 or (missing and settings.teams_mode is None and not config.dry_run):
        raise ConfigError(
            f"{', '.join(missing)} must be set to receive /broadcast from Slack (see README, 'Create the Slack "
            "app'), or configure Teams instead; or set dry_run = true at the top of the config to try the bot"
        )
    if missing:
        lines.append(f"Slack is off: set {' and '.join(missing)} to receive /broadcast. /healthz is served.")
    status_secret = settings.secret("RELAY_STATUS_SECRET")
    if status_secret is not None and len(status_secret.value) < MIN_SECRET:
        raise ConfigError(
            f"RELAY_STATUS_SECRET is shorter than {MIN_SECRET} characters, which is guessable: use a long random "
            "one (python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    fetching = sorted({d.kind for d in config.destinations.values() if d.kind in ("threads", "teams")})
    if fetching and settings.public_url and not settings.public_url.startswith("https://"):
        lines.append(
            f"RELAY_PUBLIC_URL is not an https:// address: {' and '.join(fetching)} fetch images over HTTPS "
            "only, so the images of a broadcast will not reach them. Serve the bot over HTTPS and set its URL."
        )
    if settings.teams_mode == "anonymous":
        live = [f"{d.name} ({d.kind})" for d in config.destinations.values() if not d.dry_run]
        reach = (
            f"anyone on this machine can post, unsigned, to these LIVE destinations: {', '.join(live)}"
            if live
            else "every destination is dry, so nothing can be posted"
        )
        lines.append(
            f"TEAMS ANONYMOUS MODE: /api/messages accepts unsigned requests, so the server listens on {LOOPBACK} "
            f"only{' (HOST is ignored)' if settings.host else ''}, for local tries (Agents Playground); {reach}. "
            f"Set {TEAMS_SETTINGS}CLIENTID, CLIENTSECRET and TENANTID, and remove ANONYMOUS_ALLOWED, before Teams "
            "can reach this bot."
        )
    return lines


async def check_database(settings: Settings) -> None:
    """Open the database as the bot would (created and brought up to date if need be), without taking the
    bot's lock, so a check beside a running bot does not stop it; raises StoreError naming the fix."""
    store = store_for(settings)
    try:
        await store.open(exclusive=False)
    finally:
        await store.close()

"""The terminal entry point: see what a message becomes, check the config, list what was broadcast.

    python -m relay preview "Our Q3 results are out" --audience public
    python -m relay check
    python -m relay list
    python -m relay audit --since 2026-11-01 --format csv
    python -m relay copy-to-postgres      (RELAY_DB's SQLite file into DATABASE_URL's empty database)
    python -m relay new-secret-key        (a key for RELAY_SECRET_KEY, which seals leaders' tokens)
    python -m relay rotate-key            (seal every stored token again with RELAY_SECRET_KEY's first key)

It reads the same environment and config as the bot, so a newcomer sees it work before wiring Slack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime

from adapters import SPECS, build_destinations
from adapters.teams import unreachable_channels
from relay import audit, link_cards, outbox
from relay.accounts import reseal_all
from relay.broadcasts import Broadcasts, Refused, recent
from relay.config import Config, ConfigError, Settings, load_config, settings_from_env
from relay.printable import printable
from relay.render import InputError
from relay.reports import line
from relay.startup import check_database, startup_warnings
from relay.store import StoreError, store_for
from relay.vault import HOW_TO_MAKE_ONE, KEY_VARIABLE, Unsealable, Vault, new_key, vault_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relay", description="The broadcast relay, from the terminal.")
    commands = parser.add_subparsers(dest="command", required=True)
    preview = commands.add_parser("preview", help="show exactly what each destination would receive")
    preview.add_argument("message", help="the message, in Slack formatting")
    preview.add_argument("--audience", help="an audience from the config (default: the policy's default)")
    commands.add_parser("check", help="check the config and the environment, as the bot does at start-up")
    listing = commands.add_parser("list", help="recent broadcasts with each destination's delivery state")
    listing.add_argument("--limit", type=int, default=20)
    trail = commands.add_parser("audit", help="export the audit trail: who did what, when and from where")
    trail.add_argument("--since", type=_day, default=0.0, help="a date (2026-11-01) or time (2026-11-01T09:00)")
    trail.add_argument("--format", choices=("csv", "json"), default="csv")
    commands.add_parser(
        "copy-to-postgres", help="move the SQLite database (RELAY_DB) into an empty PostgreSQL one (DATABASE_URL)"
    )
    commands.add_parser("new-secret-key", help="print a new key for RELAY_SECRET_KEY (tokens of connected accounts)")
    commands.add_parser(
        "rotate-key", help="seal every stored token with RELAY_SECRET_KEY's first key, so the others can be dropped"
    )
    args = parser.parse_args(argv)
    if args.command == "new-secret-key":
        print(new_key())
        return 0
    try:
        settings = settings_from_env(os.environ)
        vault = vault_from(settings) if args.command == "rotate-key" else None
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    if args.command == "copy-to-postgres":
        return asyncio.run(_copy(settings))
    if args.command == "rotate-key":
        return asyncio.run(_rotate(settings, vault))
    if args.command in ("list", "audit"):  # the database alone: an auditor needs no destination's secret
        try:
            if args.command == "audit":
                return asyncio.run(_audit(settings, args.since, args.format))
            return asyncio.run(_list(settings, args.limit))
        except StoreError as error:
            print(error, file=sys.stderr)
            return 2
    try:
        config = load_config(settings, SPECS)
        warnings = startup_warnings(settings, config) if args.command == "check" else []
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    if args.command == "preview":
        return _preview(settings, config, args.message, args.audience)
    return asyncio.run(_check(settings, config, warnings))


async def _check(settings: Settings, config: Config, warnings: list[str]) -> int:
    """Every check the bot makes before it serves (the same code), then what only the database can tell:
    2 where the bot would refuse to start, 1 where it would start but cannot post everywhere yet."""
    has_run = _has_database(settings)
    try:
        await check_database(settings)
    except StoreError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    print(
        f"{settings.config_path}: OK, {len(config.destinations)} destinations, audiences: {', '.join(config.audiences)}"
    )
    for warning in warnings:
        print(f"** {warning}")
    problems = await _reach(settings, config, has_run)
    for problem in problems:
        print(f"!! {printable(problem)}")
    return 1 if problems else 0


def _preview(settings: Settings, config: Config, message: str, audience: str | None) -> int:
    store = store_for(settings)  # never opened: a preview reads and writes nothing
    destinations = build_destinations(config, settings, store)
    broadcasts = Broadcasts(store, config, destinations)
    chosen = audience or config.policy.default_audience
    try:
        renderings = broadcasts.preview(message, chosen)
    except (InputError, Refused) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Broadcast to '{chosen}' ({len(renderings)} destinations){' [dry run]' if config.dry_run else ''}\n")
    for rendering in renderings:
        print(f"== {rendering.destination}: {destinations[rendering.destination].describe()}")
        for index, part in enumerate(rendering.parts):
            label = f"part {index + 1}/{len(rendering.parts)}, " if len(rendering.parts) > 1 else ""
            print(f"-- {label}{rendering.lengths[index]}/{rendering.limit} {rendering.counting.value}")
            print(part)
            for link in rendering.links[index] if rendering.links else ():
                print(f"-- “{part[link.start : link.end]}” links to {link.value}")
        if rendering.cards:
            print(f"-- {link_cards.note(rendering.cards)}")
        if rendering.replies:
            print(f"-- replies: {rendering.replies}")
        for warning in rendering.warnings:
            print(f"!! {warning}")
        if rendering.error:
            print(f"XX {rendering.error}")
        print()
    return 1 if any(r.error for r in renderings) else 0


async def _reach(settings: Settings, config: Config, has_run: bool) -> list[str]:
    """Where the bot cannot post yet, as far as the database knows (Teams channels it was never added to)."""
    if not any(d.kind == "teams" for d in config.destinations.values()):
        return []
    if not has_run:
        return ["Teams: the bot has not run yet, so it has not been added to any team; start it and add the app"]
    store = store_for(settings)
    await store.open(exclusive=False)
    try:
        return await unreachable_channels(config, store)
    finally:
        await store.close()


async def _copy(settings: Settings) -> int:
    from relay.store.copy import copy_to_postgres  # psycopg is loaded only where it is used
    from relay.store.postgres import PostgresStore
    from relay.store.sqlite import SqliteStore

    url = settings.reveal("DATABASE_URL")
    if not url:
        print("set DATABASE_URL to the empty PostgreSQL database to copy into", file=sys.stderr)
        return 2
    if not settings.db_path.exists():
        print(f"there is no SQLite database at {settings.db_path}: point RELAY_DB at it", file=sys.stderr)
        return 2
    target = PostgresStore(url)
    try:
        copied = await copy_to_postgres(SqliteStore(settings.db_path), target)
    except StoreError as error:
        print(f"nothing was copied: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{count} {table}" for table, count in copied.rows.items())
    print(f"copied {settings.db_path} into {target}: {counts}")
    print("Start the bot with DATABASE_URL set; keep the SQLite file until you have checked the copy.")
    return 0


async def _rotate(settings: Settings, vault: Vault | None) -> int:
    if vault is None:
        print(f"{KEY_VARIABLE} is not set: {HOW_TO_MAKE_ONE}", file=sys.stderr)
        return 2
    if not _has_database(settings):
        print(f"No tokens to seal again ({settings.db_path} does not exist).")
        return 0
    store = store_for(settings)
    try:
        await store.open(exclusive=False)
        count = await reseal_all(store, vault)
    except (StoreError, Unsealable) as error:
        print(f"nothing was changed: {error}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(f"sealed {count} stored tokens with the first key of {KEY_VARIABLE}; the other keys can now be removed")
    return 0


def _has_database(settings: Settings) -> bool:
    """PostgreSQL is always there to ask; a SQLite file only once the bot has run."""
    return bool(settings.reveal("DATABASE_URL")) or settings.db_path.exists()


def _day(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01 or 2026-11-01T09:00") from None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


async def _audit(settings: Settings, since: float, form: str) -> int:
    if not _has_database(settings):
        print(f"No audit trail yet ({settings.db_path} does not exist).", file=sys.stderr)
        return 1
    store = store_for(settings)
    await store.open_read_only()
    try:
        print(audit.export(await audit.entries(store, since), form), end="")
    finally:
        await store.close()
    return 0


async def _list(settings: Settings, limit: int) -> int:
    if not _has_database(settings):
        print(f"No broadcasts yet ({settings.db_path} does not exist).")
        return 0
    store = store_for(settings)
    await store.open_read_only()
    try:
        latest = await recent(store, limit)
        if not latest:
            print("No broadcasts yet.")
        for broadcast in latest:
            when = datetime.fromtimestamp(broadcast.created_at).strftime("%Y-%m-%d %H:%M")
            print(
                printable(
                    f"{broadcast.id}  {when}  {broadcast.state.value:<9} {broadcast.audience:<12} by {broadcast.author}"
                )
            )
            print(f"    {printable(broadcast.text[:100])}")
            for delivery in await outbox.for_broadcast(store, broadcast.id):
                shown = line(delivery)
                print(
                    printable(f"    - {shown.destination:<16} {shown.words}{f'  {shown.link}' if shown.link else ''}")
                )
    finally:
        await store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

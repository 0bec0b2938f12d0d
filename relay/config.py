"""Configuration: secrets and endpoints from the environment, policy and destinations from a TOML file.

Both are read once, at start-up, into frozen objects. A wrong config stops start-up with a message naming
the file, the key and the fix: an operator should never have to guess, and a half-working bot that
silently skips a destination is worse than one that refuses to start.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from relay.addresses import Reach, public
from relay.destination import DestinationSpec

BUNDLED_EXAMPLE = Path(__file__).resolve().parent.parent / "relay.example.toml"

# Stable ids only: names change, ids don't. Slack member ids start with U (or W on Enterprise Grid);
# a Teams user is the Entra (AAD) object id, a GUID.
ID_PATTERNS = {
    "slack": re.compile(r"^slack:[UW][A-Z0-9]{2,}$"),
    "teams": re.compile(r"^teams:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
}

# The Agents SDK's own configuration names (learn.microsoft.com, "Configure your agent"): its settings are
# read from CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID, …CLIENTSECRET, …TENANTID and so on.
TEAMS_PREFIXES = ("CONNECTIONS__", "CONNECTIONSMAP__", "AGENTAPPLICATION__")
TEAMS_SETTINGS = "CONNECTIONS__SERVICE_CONNECTION__SETTINGS__"
LOOPBACK = "127.0.0.1"


class ConfigError(Exception):
    """A configuration the bot refuses to start with; the message says where and how to fix it."""


@dataclass(frozen=True)
class Secret:
    """A credential that cannot leak through repr(), str() or an f-string."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    """What the environment says: where things are, and the secrets."""

    port: int
    host: str | None  # the address to listen on; None: every interface, as a server reachable by Slack needs
    db_path: Path
    config_path: Path
    config_is_bundled_example: bool
    slack_api_url: str
    http_timeout: float  # seconds any one call to a network may take
    secrets: Mapping[str, Secret]
    # The Microsoft 365 Agents SDK reads its own documented variables (CONNECTIONS__…); they are kept
    # here, unprinted, to hand to it. `teams_mode` is "authenticated", "anonymous" or None (Teams off).
    teams_sdk_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    teams_mode: str | None = None
    teams_tenant: str | None = None
    # Where a link card's page may be fetched from: public addresses. No variable sets it, so nothing in a
    # deployment can open the relay's own network to a link; only a test, serving pages on loopback, builds
    # Settings with another.
    link_reach: Reach = field(default=public, repr=False)
    # The bot's public base URL (RELAY_PUBLIC_URL), for OAuth callbacks and the images Threads and Teams
    # fetch: without it, those networks cannot be given images.
    public_url: str | None = None

    def secret(self, name: str) -> Secret | None:
        return self.secrets.get(name)

    def reveal(self, name: str) -> str:
        """The secret's value, for the one place that sends it to its network ("" when unset)."""
        secret = self.secrets.get(name)
        return secret.value if secret else ""

    @property
    def listen_host(self) -> str | None:
        """Anonymous Teams mode takes unsigned requests, so it listens on loopback whatever HOST says: a
        deployment that sets it by mistake is unreachable from Teams rather than open to the internet."""
        return LOOPBACK if self.teams_mode == "anonymous" else self.host

    @property
    def slack_ready(self) -> bool:
        """Whether Slack requests can be received and verified."""
        return bool(self.secret("SLACK_BOT_TOKEN") and self.secret("SLACK_SIGNING_SECRET"))


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Read the environment once; the only place in the bot that looks at it."""
    port_text = env.get("PORT", "3000")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"PORT={port_text!r} is not a TCP port: set PORT to a number from 1 to 65535")
    timeout_text = env.get("RELAY_HTTP_TIMEOUT", "20")
    try:
        http_timeout = float(timeout_text)
    except ValueError:
        http_timeout = 0.0
    if not 0.5 <= http_timeout <= 120:
        raise ConfigError(f"RELAY_HTTP_TIMEOUT={timeout_text!r}: set it to a number of seconds from 0.5 to 120")
    explicit = env.get("RELAY_CONFIG")
    config_path = Path(explicit or "relay.toml")
    bundled = not explicit and not config_path.exists()
    if bundled:
        config_path = BUNDLED_EXAMPLE
    elif not config_path.exists():
        raise ConfigError(
            f"RELAY_CONFIG={explicit}: no such file; point RELAY_CONFIG at your relay.toml "
            f"(start from {BUNDLED_EXAMPLE.name})"
        )
    teams_env = {k: v for k, v in env.items() if k.startswith(TEAMS_PREFIXES) and v.strip()}
    client_id = teams_env.get(f"{TEAMS_SETTINGS}CLIENTID")
    anonymous = teams_env.get(f"{TEAMS_SETTINGS}ANONYMOUS_ALLOWED", "").lower() in ("true", "1")
    if client_id and anonymous:
        raise ConfigError(
            f"{TEAMS_SETTINGS}ANONYMOUS_ALLOWED=true would let unsigned requests in although Teams credentials "
            "are set: remove it (anonymous mode is only for local tries without credentials)"
        )
    slack_api_url = env.get("SLACK_API_URL", "https://slack.com/api/")
    if problem := url_problem("SLACK_API_URL", slack_api_url):
        raise ConfigError(problem)
    public_url = env.get("RELAY_PUBLIC_URL", "").strip().rstrip("/") or None
    if public_url and (problem := url_problem("RELAY_PUBLIC_URL", public_url)):
        raise ConfigError(problem)
    return Settings(
        port=int(port_text),
        host=env.get("HOST", "").strip() or None,
        db_path=Path(env.get("RELAY_DB", "relay.db")),
        config_path=config_path,
        config_is_bundled_example=bundled,
        slack_api_url=slack_api_url,
        http_timeout=http_timeout,
        # Every variable, masked: a destination may name its own (a second account's token, say).
        secrets={name: Secret(value) for name, value in env.items() if value.strip()},
        teams_sdk_env=teams_env,
        teams_mode="authenticated" if client_id else "anonymous" if anonymous else None,
        teams_tenant=teams_env.get(f"{TEAMS_SETTINGS}TENANTID"),
        public_url=public_url,
    )


@dataclass(frozen=True)
class Policy:
    leaders: frozenset[str]  # every id of every leader (a person's other ids included)
    approvers: frozenset[str]
    default_audience: str
    approval_channel: str | None  # Slack channel for approval requests; None: DM each approver
    pending_for: timedelta  # how long a preview or an approval request stays valid
    people: Mapping[str, frozenset[str]] = field(default_factory=dict)  # id → all ids of that person
    teams_approval_channel: str | None = None  # Teams channel for approval requests, besides approvers' chats
    names: Mapping[str, str] = field(default_factory=dict)  # id → the person's name in [people]

    def name(self, person: str) -> str:
        """How to call someone on any surface: their [people] name, else their id."""
        return self.names.get(person, person)

    def ids(self, person: str) -> frozenset[str]:
        """Every id of the person behind `person`: what they connected from Teams is theirs in Slack too."""
        return self.people.get(person, frozenset()) | {person}

    def same_person(self, a: str, b: str) -> bool:
        """One person may act from Slack and from Teams: four eyes means two people, not two ids."""
        return a == b or a in self.people.get(b, frozenset())


class Replies(Enum):
    """Who may answer a public post: the product distributes; it does not converse."""

    OPEN = "open"
    RESTRICTED = "restricted"  # only people the account follows (or the closest the network offers)
    NONE = "none"


@dataclass(frozen=True)
class DestinationConfig:
    name: str
    kind: str
    dry_run: bool
    allow_broadcast_mentions: bool
    options: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)  # role → the variable holding it (token, URL…)
    replies: Replies = Replies.OPEN


@dataclass(frozen=True)
class Config:
    path: Path
    dry_run: bool  # the whole bot renders and records, and posts nothing
    policy: Policy
    destinations: Mapping[str, DestinationConfig]
    audiences: Mapping[str, tuple[str, ...]]
    # Audiences that also reach the author's own connected accounts (`own_accounts = true`; relay.own).
    own_accounts: frozenset[str] = frozenset()
    replies: Replies = Replies.OPEN  # policy.replies: what the leaders' own accounts follow

    def audience(self, name: str) -> tuple[DestinationConfig, ...]:
        return tuple(self.destinations[d] for d in self.audiences[name])


_TOP_KEYS = {"dry_run", "policy", "people", "destinations", "audiences"}
_REPLIES = ", ".join(f'"{r.value}"' for r in Replies)
_POLICY_KEYS = {
    "replies",
    "leaders",
    "approvers",
    "default_audience",
    "approval_channel",
    "teams_approval_channel",
    "pending_hours",
}
_COMMON_DESTINATION_KEYS = {"kind": str, "dry_run": bool, "allow_broadcast_mentions": bool}
_SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
TEAMS_CHANNEL = re.compile(r"^19:[^\s]+@thread\.(tacv2|skype)$")


class _Problems:
    """Collects every problem so the operator fixes the file in one go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.path.name}: {key}: {message}")

    def unknown_keys(self, where: str, given: Mapping[str, Any], known: set[str]) -> None:
        for key in given:
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(sorted(known))}"
                self.add(f"{where}{key}", f"unknown key; {hint}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError("\n".join(self.lines))


def load_config(settings: Settings, kinds: Mapping[str, DestinationSpec], text: str | None = None) -> Config:
    """Parse and check the TOML file against the known destination kinds and the environment."""
    path = settings.config_path
    problems = _Problems(path)
    try:
        raw = tomllib.loads(text if text is not None else _read(path))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path.name}: not valid TOML ({error}); fix the syntax at that line") from None

    problems.unknown_keys("", raw, _TOP_KEYS)
    dry_run = _typed(problems, raw, "dry_run", bool, False, "")
    policy_table: Mapping[str, Any] = raw["policy"] if isinstance(raw.get("policy"), dict) else {}
    replies = _replies(problems, policy_table, "policy.", Replies.OPEN)
    destinations = _destinations(problems, raw.get("destinations"), kinds, settings, dry_run, replies)
    declared: Mapping[str, Any] = raw["destinations"] if isinstance(raw.get("destinations"), dict) else {}
    own: set[str] = set()
    audiences = _audiences(problems, raw.get("audiences"), declared, own)  # a broken destination is named once
    people = _people(problems, raw.get("people", {}))
    policy = _policy(problems, raw.get("policy"), audiences, people, _names(raw.get("people", {})))
    problems.raise_if_any()
    assert policy is not None
    return Config(path, dry_run, policy, destinations, audiences, frozenset(own), replies)


def _read(path: Path) -> str:
    """The file's text. TOML is UTF-8 without a byte-order mark (toml.io, "Spec"); editors on Windows may save
    either way, and tomllib's own complaint ("Invalid statement at line 1, column 1") would not say why."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise ConfigError(f'{path}: starts with a byte-order mark (saved as "UTF-8 with BOM"); save it as plain UTF-8')
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line} is not UTF-8 (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None


def url_problem(variable: str, value: str) -> str | None:
    """Why `value` cannot be a network's address, or None. The value itself is not repeated: an address
    may carry credentials (https://user:password@host)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        shown = f"'{parts.scheme}:'" if parts.scheme.isascii() and parts.scheme.isalnum() else "missing"
        return f"{variable} is not a web address: its scheme is {shown}; write it like https://host.example"
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if not host or any(unicodedata.category(c).startswith(("C", "Z")) for c in host):
        return f"{variable} is not a web address: it has no valid host; write it like https://host.example"
    return None


def _typed(problems: _Problems, table: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        problems.add(f"{where}{key}", f"must be {_type_name(kind)}, not {value!r}")
        return default
    return value


def _type_name(kind: type) -> str:
    return {str: "a string in quotes", bool: "true or false", int: "a whole number", list: "a list"}.get(
        kind, kind.__name__
    )


def _table(problems: _Problems, value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        problems.add(key, f"missing; add a [{key}] table (see {BUNDLED_EXAMPLE.name})")
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"must be a table, written [{key}]")
        return {}
    return value


def _replies(problems: _Problems, table: Mapping[str, Any], where: str, default: Replies) -> Replies:
    value = table.get("replies", default.value)
    try:
        return Replies(value)
    except ValueError:
        problems.add(f"{where}replies", f"{value!r} is not a reply policy; use one of {_REPLIES}")
        return default


def _destinations(
    problems: _Problems,
    raw: Any,
    kinds: Mapping[str, DestinationSpec],
    settings: Settings,
    bot_dry_run: bool,
    replies: Replies,
) -> dict[str, DestinationConfig]:
    found: dict[str, DestinationConfig] = {}
    for name, table in _table(problems, raw, "destinations").items():
        where = f"destinations.{name}."
        if not isinstance(table, dict):
            problems.add(f"destinations.{name}", f"must be a table, written [destinations.{name}]")
            continue
        kind = table.get("kind")
        spec = kinds.get(kind) if isinstance(kind, str) else None
        if spec is None:
            known = ", ".join(f'"{k}"' for k in sorted(kinds))
            problems.add(f"{where}kind", f"{kind!r} is not a destination kind; use one of {known}")
            continue
        assert isinstance(kind, str)
        env_keys = {f"{role}_env": str for role in {**spec.secrets, **spec.endpoints}}
        schema = {**_COMMON_DESTINATION_KEYS, **spec.options, **env_keys}
        if spec.replies:
            schema["replies"] = str
        problems.unknown_keys(where, table, set(schema))
        options = {}
        for key, expected in spec.options.items():
            if key in table:
                options[key] = _typed(problems, table, key, expected, None, where)
            elif key in spec.required:
                problems.add(f"{where}{key}", f"missing; a {kind} destination needs it")
        dry = bool(_typed(problems, table, "dry_run", bool, False, where))
        if spec.check_options is not None and all(options.get(key) is not None for key in spec.required):
            for key, message in spec.check_options(options):
                problems.add(f"{where}{key}", message)
        env = {
            role: str(_typed(problems, table, f"{role}_env", str, variable, where))
            for role, variable in {**spec.secrets, **{r: e[0] for r, e in spec.endpoints.items()}}.items()
        }
        needed = [env[role] for role in spec.secrets] + [env[r] for r, e in spec.endpoints.items() if e[1] is None]
        missing = [variable for variable in needed if settings.secret(variable) is None]
        if missing and not (dry or bot_dry_run):
            problems.add(
                f"destinations.{name}",
                f"needs {', '.join(missing)} in the environment; set "
                f"{'them' if len(missing) > 1 else 'it'}, or set dry_run = true on this destination "
                "to render and record without posting",
            )
        for role in spec.endpoints:
            address = settings.reveal(env[role])
            if address and (problem := url_problem(env[role], address)):
                problems.add(f"destinations.{name}", problem)
        not_ready = spec.check_ready(settings) if spec.check_ready is not None else None
        if not_ready and not (dry or bot_dry_run):
            problems.add(f"destinations.{name}", f"{not_ready}; or set dry_run = true on this destination")
        found[name] = DestinationConfig(
            name=name,
            kind=kind,
            dry_run=dry or bot_dry_run,
            allow_broadcast_mentions=bool(_typed(problems, table, "allow_broadcast_mentions", bool, False, where)),
            options=options,
            env=env,
            replies=_replies(problems, table, where, replies) if spec.replies else Replies.OPEN,
        )
    return found


def slack_channel_problem(channel: str) -> str | None:
    if _SLACK_CHANNEL.match(channel):
        return None
    return (
        f"{channel!r} is not a Slack channel ID; use the ID (like C0123ABCD, from the channel's "
        "details → About), not its name: names change, IDs don't"
    )


def teams_channel_problem(channel: str) -> str | None:
    if TEAMS_CHANNEL.match(channel):
        return None
    return (
        f"{channel!r} is not a Teams channel id; use the id from the channel's ⋯ → Get link to channel "
        "(the part like 19:abc…@thread.tacv2, decoded), not its name"
    )


# Every audience is an option of Slack's audience menus (the preview's and the composer's): a menu holds at
# most 100 options, and an option's text at most 75 characters (docs.slack.dev/reference/block-kit:
# block-elements/select-menu-element, composition-objects/option-object). Past either, Slack refuses every
# preview and the composer, so the bot refuses to start instead.
AUDIENCE_NAME_MAX = 75
AUDIENCES_MAX = 100


_AUDIENCE_KEYS = {"destinations", "own_accounts"}


def _audiences(
    problems: _Problems, raw: Any, destinations: Mapping[str, Any], own: set[str]
) -> dict[str, tuple[str, ...]]:
    """Each audience is a list of destination names, or a table `{ destinations = [...], own_accounts = true }`:
    the author's own connected accounts too (only theirs, and only for their own broadcasts)."""
    found: dict[str, tuple[str, ...]] = {}
    table = _table(problems, raw, "audiences")
    if len(table) > AUDIENCES_MAX:
        problems.add(
            "audiences",
            f"{len(table)} audiences; Slack's audience menu holds at most {AUDIENCES_MAX}: merge or remove "
            f"{len(table) - AUDIENCES_MAX}",
        )
    for name, members in table.items():
        key = f"audiences.{name}"
        if len(name) > AUDIENCE_NAME_MAX:
            problems.add(
                key,
                f"the name is {len(name)} characters; Slack's audience menu shows at most {AUDIENCE_NAME_MAX}: "
                "shorten it",
            )
        if isinstance(members, dict):
            problems.unknown_keys(f"{key}.", members, _AUDIENCE_KEYS)
            if _typed(problems, members, "own_accounts", bool, False, f"{key}."):
                own.add(name)
            members = members.get("destinations", [])
        if (
            not isinstance(members, list)
            or not (members or name in own)
            or not all(isinstance(m, str) for m in members)
        ):
            problems.add(
                key,
                'must be a non-empty list of destination names, like ["all-staff"], or a table like '
                '{ destinations = ["all-staff"], own_accounts = true }',
            )
            continue
        for member in members:
            if member not in destinations:
                near = difflib.get_close_matches(member, sorted(destinations), n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"add a [destinations.{member}] table"
                problems.add(key, f"'{member}' is not a destination; {hint}")
        found[name] = tuple(dict.fromkeys(members))
    return found


def _names(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {one: name for name, ids in raw.items() if isinstance(ids, list) for one in ids if isinstance(one, str)}


def _people(problems: _Problems, raw: Any) -> dict[str, frozenset[str]]:
    """`[people]`: each person's ids on every platform, so policy sees one person behind them."""
    if not isinstance(raw, dict):
        problems.add("people", 'must be a table: [people] then name = ["slack:U0123ABC", "teams:<id>"]')
        return {}
    people: dict[str, frozenset[str]] = {}
    for name, ids in raw.items():
        key = f"people.{name}"
        if not isinstance(ids, list) or not ids:
            problems.add(key, 'must be a list of one person\'s ids, like ["slack:U0123ABC", "teams:<id>"]')
            continue
        person = frozenset(_valid_ids(problems, key, ids))
        for one in person:
            if one in people:
                problems.add(key, f"{one} is already someone else's id in [people]; an id belongs to one person")
            people[one] = person
    return people


def _policy(
    problems: _Problems,
    raw: Any,
    audiences: Mapping[str, tuple[str, ...]],
    people: Mapping[str, frozenset[str]],
    names: Mapping[str, str],
) -> Policy | None:
    table = _table(problems, raw, "policy")
    problems.unknown_keys("policy.", table, _POLICY_KEYS)
    leaders = _ids(problems, table, "leaders")
    approvers = _ids(problems, table, "approvers")
    if "leaders" in table and not leaders:
        problems.add("policy.leaders", 'is empty: nobody could broadcast; add an id like "slack:U0123ABC"')
    elif "leaders" not in table:
        problems.add("policy.leaders", 'missing; list who may broadcast, like leaders = ["slack:U0123ABC"]')
    default = _typed(problems, table, "default_audience", str, None, "policy.")
    if default is None:
        problems.add("policy.default_audience", "missing; name the audience /broadcast uses by default")
    elif audiences and default not in audiences:
        problems.add(
            "policy.default_audience",
            f"'{default}' is not an audience; use one of {', '.join(sorted(audiences))}",
        )
    channel = _typed(problems, table, "approval_channel", str, None, "policy.")
    if channel is not None and (problem := slack_channel_problem(channel)):
        problems.add("policy.approval_channel", problem)
    teams_channel = _typed(problems, table, "teams_approval_channel", str, None, "policy.")
    if teams_channel is not None and (problem := teams_channel_problem(teams_channel)):
        problems.add("policy.teams_approval_channel", problem)
    hours = table.get("pending_hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 30:
        problems.add("policy.pending_hours", f"must be a number of hours from 0 to 720, not {hours!r}")
        hours = 24
    return Policy(
        leaders=_with_other_ids(leaders, people),
        approvers=_with_other_ids(approvers, people),
        default_audience=default or "",
        approval_channel=channel,
        pending_for=timedelta(hours=hours),
        people=people,
        teams_approval_channel=teams_channel,
        names=names,
    )


def _with_other_ids(ids: frozenset[str], people: Mapping[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(ids, *(people.get(i, frozenset()) for i in ids))


def _ids(problems: _Problems, table: Mapping[str, Any], key: str) -> frozenset[str]:
    value = table.get(key, [])
    if not isinstance(value, list):
        problems.add(f"policy.{key}", 'must be a list of ids, like ["slack:U0123ABC"]')
        return frozenset()
    return frozenset(_valid_ids(problems, f"policy.{key}", value))


def _valid_ids(problems: _Problems, key: str, items: list[Any]) -> list[str]:
    good = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not any(p.match(item) for p in ID_PATTERNS.values()):
            problems.add(f"{key}[{index}]", _id_fix(item))
        else:
            good.append(item)
    return good


def _id_fix(item: Any) -> str:
    text = str(item)
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", text):
        return f"{text!r} needs its platform: write 'slack:{text}'"
    if text.startswith("@") or (isinstance(item, str) and not item.count(":")):
        return (
            f"{text!r} is not a stable id; write 'slack:<member id>' (Slack profile → ⋮ → Copy member ID), "
            "never a name, which anyone can change"
        )
    return f"{text!r} is not a stable id; write 'slack:U0123ABC' or 'teams:<Entra object id>'"

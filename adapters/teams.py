"""Microsoft Teams channels as a destination, and the Teams connection both Teams modules share.

Built on the Microsoft 365 Agents SDK. Teams lets a bot post only where it has been installed, and tells
it where that is only then: the `Directory` keeps those conversation references in the database, so a
restart forgets nothing. Teams offers a bot no way to read a channel back, so a post whose answer was
lost can never be proven and is reported as unknown, never sent twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from aiohttp import ClientResponseError
from microsoft_agents.activity import (
    Activity,
    Attachment,
    ChannelAccount,
    ConversationReference,
    load_configuration_from_env,
)
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ClaimsIdentity, MessageFactory, TurnContext

from adapters.teams_cards import pictures
from relay.config import TEAMS_SETTINGS, Config, DestinationConfig, Settings, teams_channel_problem
from relay.destination import (
    Counting,
    DestinationSpec,
    FindResult,
    Image,
    ImageLimits,
    Limits,
    Markup,
    Outcome,
    Part,
    Permanent,
    Retry,
    Sent,
    Unprovable,
)
from relay.store import Connection, Row, Store
from relay.transport import LazySession, PerLoop, client_timeout, read_at_most, server_hint, transport_outcome


def _ready(settings: Settings) -> str | None:
    if settings.teams_mode is None:
        return (
            f"needs the Teams app's credentials: {TEAMS_SETTINGS}CLIENTID, CLIENTSECRET and TENANTID "
            "(see README, 'Microsoft Teams')"
        )
    return None


SPEC = DestinationSpec(
    kind="teams",
    options={"channel": str},
    required=("channel",),
    check_options=lambda options: [("channel", p) for p in [teams_channel_problem(options["channel"])] if p],
    check_ready=_ready,
)

# Teams refuses messages over about 28 KB, envelope included (learn.microsoft.com, "Format your bot
# messages"), and allows a bot 60 messages per 30 seconds in one conversation ("Optimize your bot: rate
# limiting"): 25,000 characters and one post every half second stay inside both.
LIMITS = Limits(
    max_length=25_000,
    counting=Counting.CHARACTERS,
    markup=Markup.MARKDOWN,
    # Teams allows a bot 50 requests a second per tenant, and about 7 a second in one conversation
    # (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit). As many calls in flight as the
    # tenant takes in a second, so a second's worth goes at once however slow each answer.
    concurrency=50,
    min_interval=0.5,
    rate=50.0,
)

# Images in a card (learn.microsoft.com, "Types of cards", inline card images): PNG, JPEG or GIF, at most
# 1024×1024 pixels and 1 MB, linked by an HTTPS URL Teams fetches to show them. Teams names no count; the
# relay's own four go in one card. The text beside them leaves room for the card within the 28 KB message.
IMAGES = ImageLimits(
    max_count=10,
    max_bytes=1024 * 1024,
    formats=frozenset({"image/jpeg", "image/png", "image/gif"}),
    max_side=1024,
    max_text=20_000,
    by_url=True,
)
NO_PUBLIC_URL = "set RELAY_PUBLIC_URL so that Teams can fetch the images"

# Microsoft asks bots to retry these with backoff ("Optimize your bot: rate limiting and best practices");
# a 500 or 503 is the service failing for now. Any other answer, 501 Not Implemented included, will be
# the same however often it is asked.
_RETRY_STATUSES = {412, 429, 500, 502, 503, 504}


class TeamsConnection:
    """The Agents SDK's adapter and identity, configured from its own CONNECTIONS__… variables.

    Posts, edits and deletions the bot makes on its own go straight to the Bot Connector REST API
    (learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference) over one
    connection pool, with the SDK's token: the SDK's proactive turn does the same calls underneath, but
    builds a turn, its telemetry and a new HTTP session for every message, which at a thousand channels
    was most of the CPU a broadcast cost."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connections = MsalConnectionManager(**load_configuration_from_env(settings.teams_sdk_env))
        self.auth = self.connections.get_default_connection_configuration()
        self.adapter = CloudAdapter(connection_manager=self.connections)
        self.adapter.on_turn_error = _raise
        self.anonymous = settings.teams_mode == "anonymous"
        self._http = LazySession(client_timeout(settings.http_timeout))

    def identity(self) -> ClaimsIdentity:
        """Who the bot is when it speaks first (a proactive post); anonymous only for local tries."""
        if self.anonymous:
            return ClaimsIdentity()
        return ClaimsIdentity({"aud": self.auth.CLIENT_ID, "appid": self.auth.CLIENT_ID})

    async def send(self, reference: ConversationReference, activity: Activity) -> str:
        """Post a new message into a conversation; returns its id. Bounded by RELAY_HTTP_TIMEOUT."""
        answer = await self._call("POST", reference, "", activity)
        return str(answer.get("id") or "")

    async def create_personal(
        self, reference: ConversationReference, person: ChannelAccount | None, tenant: str | None
    ) -> str:
        """Open (or find: Teams keeps one per person and bot) the bot's 1:1 chat with `person`, whose
        Teams user id (`29:…`) came in an activity; returns the conversation id (Bot Connector,
        "Create Conversation": learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/
        send-proactive-messages)."""
        if person is None or not person.id:
            raise ValueError("no Teams user to open a chat with")
        body = {
            "isGroup": False,
            "bot": {"id": reference.agent.id if reference.agent else ""},
            "members": [{"id": person.id}],
            "tenantId": tenant,
            "channelData": {"tenant": {"id": tenant}},
        }
        service = (reference.service_url or "").rstrip("/")
        headers = await self._authorization(service)
        async with self._http().post(f"{service}/v3/conversations", json=body, headers=headers) as answer:
            answer.raise_for_status()
            found = await answer.json(content_type=None)
        return str(found["id"])

    async def delete(self, reference: ConversationReference, activity_id: str) -> None:
        await self._call("DELETE", reference, f"/{activity_id}", None)

    async def update(self, reference: ConversationReference, activity_id: str, activity: Activity) -> None:
        """Replace a message the bot posted (a card turning into a report)."""
        activity.id = activity_id
        await self._call("PUT", reference, f"/{activity_id}", activity)

    async def download(self, url: str, service_url: str, limit: int, with_token: bool) -> tuple[int, bytes]:
        """A file a person sent the bot: its status and at most `limit` bytes, bounded by RELAY_HTTP_TIMEOUT.
        The bot's token goes only where Teams asks for it (a pasted image, on the Bot Connector), never to a
        file's own pre-signed download URL."""
        headers = await self._authorization(service_url) if with_token else {}
        async with self._http().get(url, headers=headers, allow_redirects=False) as answer:
            if answer.status != 200:
                return answer.status, b""
            return 200, await read_at_most(answer.content, limit)

    async def _call(
        self, method: str, reference: ConversationReference, suffix: str, activity: Activity | None
    ) -> dict[str, Any]:
        """One Bot Connector call; a refusal raises ClientResponseError (with its headers, for Retry-After)."""
        service = (reference.service_url or "").rstrip("/")
        url = f"{service}/v3/conversations/{reference.conversation.id}/activities{suffix}"
        body = None
        if activity is not None:
            activity.apply_conversation_reference(reference)
            body = activity.model_dump(by_alias=True, exclude_unset=True, mode="json")
        async with self._http().request(method, url, json=body, headers=await self._authorization(service)) as answer:
            answer.raise_for_status()
            text = await answer.text()
        found = json.loads(text) if text else {}
        return found if isinstance(found, dict) else {}

    async def _authorization(self, service_url: str) -> dict[str, str]:
        """The SDK's token for the Bot Connector (cached and renewed by MSAL), as the SDK would send it."""
        if self.anonymous:
            return {}
        identity = self.identity()
        provider = self.connections.get_token_provider(identity, service_url)
        token = await provider.get_access_token(identity.get_token_audience(), identity.get_token_scope())
        return {"Authorization": f"Bearer {token}"}

    async def close(self) -> None:
        await self._http.close()


# One connection per event loop and bot: a thousand channels share its token and its connection pool.
_CONNECTIONS: PerLoop[int, TeamsConnection] = PerLoop()


def shared_connection(settings: Settings) -> TeamsConnection:
    return _CONNECTIONS.get(id(settings), lambda: TeamsConnection(settings))


async def _raise(context: TurnContext, error: Exception) -> None:
    """Let a failed post reach the outbox, which classifies and retries it. The SDK's default handler
    swallows the error and posts its text into the conversation, to the people reading the channel."""
    raise error


@dataclass(frozen=True)
class Place:
    """A conversation the bot may post in."""

    id: str
    kind: str  # "channel" or "personal"
    name: str
    team_id: str | None
    team_name: str | None
    reference: ConversationReference


class Directory:
    """Where the bot has been installed: channels of its teams, and people's personal chats with it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def remember(
        self,
        reference: ConversationReference,
        kind: str,
        name: str,
        team: tuple[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        row = (
            reference.conversation.id,
            kind,
            name,
            team[0] if team else None,
            team[1] if team else None,
            user,
            reference.model_dump_json(by_alias=True, exclude_none=True),
            time.time(),
        )

        def run(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO teams_conversations (id, kind, name, team_id, team_name, user_id, reference, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET kind = excluded.kind,"
                " name = excluded.name, team_id = excluded.team_id, team_name = excluded.team_name,"
                " user_id = excluded.user_id, reference = excluded.reference, updated_at = excluded.updated_at",
                row,
            )

        await self.store.write(run)

    async def forget(self, conversation_id: str | None = None, team_id: str | None = None) -> None:
        def run(conn: Connection) -> None:
            conn.execute("DELETE FROM teams_conversations WHERE id = ? OR team_id = ?", (conversation_id, team_id))

        await self.store.write(run)

    async def place(self, conversation_id: str) -> Place | None:
        return await self._one("id = ?", conversation_id)

    async def personal_chat(self, user: str) -> Place | None:
        return await self._one("kind = 'personal' AND user_id = ?", user)

    async def teams(self) -> list[str]:
        """Names of the teams the bot is in, for telling an operator where it can post."""

        def run(conn: Connection) -> list[str]:
            rows = conn.execute("SELECT DISTINCT team_name FROM teams_conversations WHERE kind = 'channel'")
            return [str(row[0]) for row in rows.fetchall()]

        return await self.store.call(run)

    async def channels(self) -> dict[str, Place]:
        """Every channel the bot is in, by id: one read for all the channels of a fan-out."""

        def run(conn: Connection) -> list[Row]:
            return conn.execute("SELECT * FROM teams_conversations WHERE kind = 'channel'").fetchall()

        return {place.id: place for place in map(_place, await self.store.call(run))}

    async def _one(self, where: str, value: str) -> Place | None:
        def run(conn: Connection) -> Row | None:
            row: Row | None = conn.execute(
                f"SELECT * FROM teams_conversations WHERE {where} ORDER BY updated_at DESC LIMIT 1", (value,)
            ).fetchone()
            return row

        row = await self.store.call(run)
        return _place(row) if row is not None else None


def _place(row: Row) -> Place:
    return Place(
        id=row["id"],
        kind=row["kind"],
        name=row["name"] or "",
        team_id=row["team_id"],
        team_name=row["team_name"],
        reference=ConversationReference.model_validate_json(row["reference"]),
    )


class ChannelPlaces:
    """Where each channel is, as the bot last learned it: every channel read at once, and again after
    `PLACE_KEPT` (Teams may move a team). A fan-out's first posts each read their channel's address right
    before leaving, a thousand reads beside the outbox's writes; one read serves them all."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._lock = asyncio.Lock()
        self._read: tuple[dict[str, Place], float] | None = None

    async def get(self, channel: str) -> Place | None:
        async with self._lock:  # the first of many reads for all; the others wait for it
            if self._read is None or time.monotonic() - self._read[1] > PLACE_KEPT:
                self._read = (await self.directory.channels(), time.monotonic())
            place = self._read[0].get(channel)
        if place is None:  # the bot may have been added to its team since
            place = await self.directory.place(channel)
        return place


# One per event loop and database: every Teams channel of the configuration shares it.
_PLACES: PerLoop[Store, ChannelPlaces] = PerLoop()


async def unreachable(directory: Directory, channel: str) -> str | None:
    """Why the bot cannot post in `channel` yet, in words an operator can act on; None if it can."""
    if await directory.place(channel) is not None:
        return None
    teams = await directory.teams()
    known = f" It is in: {', '.join(teams)}." if teams else " It has not been added to any team yet."
    return (
        f"The bot cannot post in Teams channel {channel}: add the app to the team that owns it "
        f"(README, 'Microsoft Teams'); it learns a team's channels when it is added.{known}"
    )


async def unreachable_channels(config: Config, store: Store) -> list[str]:
    """For each Teams destination the bot cannot post to yet, why, by name (start-up and `relay check`). The
    channels the bot is in are read at once: a thousand Teams destinations, one read at start-up."""
    directory = Directory(store)
    known = await directory.channels()
    lines = []
    for destination in config.destinations.values():
        if destination.kind == "teams" and not destination.dry_run and destination.options["channel"] not in known:
            problem = await unreachable(directory, destination.options["channel"])
            if problem:
                lines.append(f"destination {destination.name}: {problem}")
    return lines


def classify(error: Exception) -> Outcome:
    """An answer from the Bot Connector service, or a transport failure."""
    if isinstance(error, ClientResponseError):
        status = error.status
        if status in _RETRY_STATUSES:
            return Retry(f"Teams answered {status}", server_hint(dict(error.headers or {})))
        if status in (401, 403):
            return Permanent(
                "Teams refused the bot: check its credentials "
                f"({TEAMS_SETTINGS}CLIENTID and CLIENTSECRET) and that the app is still installed in the team."
            )
        if status == 404:
            return Permanent("Teams does not know this conversation any more: was the channel deleted?")
        if status == 413:
            return Permanent("Teams refused the message as too large (over about 28 KB): shorten it.")
        if status >= 500:
            return Permanent(f"Teams cannot do this here ({status}): asking again would get the same answer.")
        return Permanent(f"Teams rejected the message ({status}).")
    if isinstance(error, TimeoutError):
        return transport_outcome(TimeoutError(), "Teams")
    return transport_outcome(error, "Teams")


PLACE_KEPT = 60.0  # seconds a channel's address is used before it is read again (Teams may move a team)


class TeamsChannel:
    """A channel of a team the bot has been added to."""

    limits = LIMITS
    editable = True
    idempotency_window = 0.0

    def __init__(self, config: DestinationConfig, settings: Settings, store: Store) -> None:
        self.name = config.name
        self.channel: str = config.options["channel"]
        self.settings = settings
        self.directory = Directory(store)
        images = IMAGES if settings.public_url else replace(IMAGES, refused=NO_PUBLIC_URL)
        self.limits = replace(LIMITS, images=images)

    def _teams(self) -> TeamsConnection:
        return shared_connection(self.settings)

    async def _place(self) -> Place | None:
        """Shared by every channel on this event loop's database (made in the loop, as `relay preview`
        builds destinations without one)."""
        return await _PLACES.get(self.directory.store, lambda: ChannelPlaces(self.directory)).get(self.channel)

    async def publish(self, part: Part) -> Outcome:
        place = await self._place()
        if place is None:
            return Permanent(await unreachable(self.directory, self.channel) or "")
        message = _message(part.text, part.images, part.image_urls)
        if message is None:
            return Permanent(f"Teams fetches images from the bot: {NO_PUBLIC_URL}.")
        try:
            message_id = await self._teams().send(place.reference, message)
        except Exception as error:  # classified, or raised again by transport_outcome when not transport
            return classify(error)
        return Sent(message_id, _link(place, message_id, self.settings.teams_tenant))

    async def edit(self, remote_id: str, text: str) -> Outcome:
        return await self.edit_with_images(remote_id, text, (), ())

    async def edit_with_images(
        self, remote_id: str, text: str, images: tuple[Image, ...], image_urls: tuple[str, ...]
    ) -> Outcome:
        """The corrected text, with the post's images again: Teams replaces the whole message."""
        place = await self._place()
        if place is None:
            return Permanent(await unreachable(self.directory, self.channel) or "")
        message = _message(text, images, image_urls)
        if message is None:
            return Permanent(f"Teams fetches images from the bot: {NO_PUBLIC_URL}.")
        try:
            await self._teams().update(place.reference, remote_id, message)
        except Exception as error:
            return classify(error)
        return Sent(remote_id, None)

    async def delete(self, remote_id: str) -> Outcome:
        place = await self._place()
        if place is None:
            return Permanent(await unreachable(self.directory, self.channel) or "")
        try:
            await self._teams().delete(place.reference, remote_id)
        except ClientResponseError as error:
            if error.status == 404:
                return Sent(remote_id, None)  # already gone
            return classify(error)
        except Exception as error:
            return classify(error)
        return Sent(remote_id, None)

    async def find(self, part: Part, since: float) -> FindResult:
        return Unprovable(
            f"The message may or may not be in the Teams channel {self.name}: Teams gives bots no way to "
            "read a channel back, so look there before posting it by hand."
        )

    async def prepare(self) -> None:
        return None

    def replies_note(self) -> str | None:
        return None  # a staff channel: replies are conversation among colleagues

    def pace_key(self) -> str:
        return f"teams:{self.channel}"

    def limit_key(self) -> str:
        return f"teams:{self.settings.teams_tenant or ''}"  # Teams also caps a bot per tenant

    def describe(self) -> str:
        return f"Teams channel {self.channel}"

    async def close(self) -> None:
        """Close the shared connection (the first channel to close does it; the app is stopping)."""
        connection = _CONNECTIONS.pop(id(self.settings))
        if connection is not None:
            await connection.close()


def _message(text: str, images: tuple[Image, ...], urls: tuple[str, ...]) -> Activity | None:
    """A channel post: the markdown text, and its images in a card under it (None: no URL for them)."""
    message = MessageFactory.text(text)
    message.text_format = "markdown"
    if images:
        if len(urls) != len(images):
            return None
        card = pictures(images, urls)
        message.attachments = [Attachment(content_type="application/vnd.microsoft.card.adaptive", content=card)]
    return message


def _link(place: Place, message_id: str, tenant: str | None) -> str:
    """A deep link to the message (learn.microsoft.com, "Create deep links")."""
    query = f"?parentMessageId={quote(message_id)}" + (f"&tenantId={quote(tenant)}" if tenant else "")
    return f"https://teams.microsoft.com/l/message/{quote(place.id, safe='')}/{quote(message_id)}{query}"


def reference_json(reference: ConversationReference) -> dict[str, Any]:
    """A reference as plain JSON, for keeping beside a broadcast."""
    data: dict[str, Any] = json.loads(reference.model_dump_json(by_alias=True, exclude_none=True))
    return data

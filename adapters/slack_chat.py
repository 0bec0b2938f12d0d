"""The Slack surface: `/broadcast`, the preview's buttons, the composer, approvals and the live report.

Bolt verifies every request's signature and timestamp; in front of it, `handle` refuses what Slack never
sends (another content type, a payload Bolt would fail on) and a second copy of a signed request, and a
middleware admits only people of the app's own workspace. Each handler acknowledges first (Slack gives
three seconds) and then asks the core, which checks the policy for the person who clicked: a button's
value names the broadcast, never who may act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.internals import extract_enterprise_id, extract_team_id
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.metadata import Metadata
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters import slack_blocks as blocks
from adapters import slack_files
from adapters.slack import explain, web_client, whole_seconds
from adapters.slack_accounts import SlackAccounts
from relay import policy, replays, schedule
from relay.accounts import Accounts
from relay.audit import Where
from relay.broadcasts import BROADCAST_ID, Broadcasts, Refused
from relay.config import Settings
from relay.images import MAX_IMAGES
from relay.model import Broadcast, BroadcastState
from relay.render import InputError
from relay.reports import ReportRefresher
from relay.store import Store, Unwritable
from relay.transport import client_timeout

log = logging.getLogger(__name__)

ORIGIN = "slack"
REPORT_EVENT = "relay_report"  # metadata marking the live report, so it can be found again after a crash
SETTLE_AT_CLOSE = 5.0  # seconds handlers get to finish when the bot stops
REPORT_SPACING = 1.0  # seconds between two edits of one report: Slack allows about one a second
# Slack sends slash commands and interaction payloads form-encoded (docs.slack.dev, "Implementing slash
# commands", "Handling user interaction"); the app subscribes to no Events API events, which come as JSON.
FORM = "application/x-www-form-urlencoded"
# Slack's signature is accepted for five minutes either side of its timestamp (docs.slack.dev, "Verifying
# requests from Slack"), so a copy can be replayed for at most ten minutes after the original is seen.
REPLAY_WINDOW = 600.0
NO_ZONE = "Nothing was scheduled: Slack did not tell the relay your time zone, and a guess could send it hours off."
OTHER_WORKSPACE = "This relay serves its own Slack workspace only; people from other workspaces cannot use it."


class NoZone(Exception):
    """Slack did not give the person's time zone; the message says why, for them."""


class _ClientGivenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and, given our configured client too, warns on every start that
    the token "will be unused"; it is the same token, so the warning would only alarm operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


class _NoRefusedBodies(logging.Filter):
    """Bolt logs the whole body of a request whose signature fails. A real request that arrived late
    carries Slack's verification token and a response_url (a key to write in the person's channel for
    half an hour), and a forged one carries whatever its sender wants in the log: say only that it was refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Invalid request signature detected"):
            record.msg, record.args = "refused a Slack request whose signature did not verify", ()
        return True


logging.getLogger("slack_bolt.AsyncApp").addFilter(_ClientGivenNotice())
logging.getLogger("slack_bolt.RequestVerification").addFilter(_NoRefusedBodies())


def _where(channel: str | None) -> Where:
    return Where(ORIGIN, channel or "")


def actor(user_id: str) -> str:
    return f"slack:{user_id}"


class ReplayGuard:
    """Accepts each signed Slack request once.

    Slack never resends a slash command or an interaction (a command that times out is shown to the person
    as failed; typed again, it is signed anew), so a signature seen twice is a copy: someone replaying a
    captured request. Approving twice is harmless already (a compare-and-set), but a replayed audience
    choice or edit would quietly undo the leader's later change to a draft, and a replayed command would
    make drafts nobody wrote. Only valid signatures are kept, in the database, for REPLAY_WINDOW: a restart
    or a second instance does not forget them.
    """

    def __init__(self, secret: str, store: Store) -> None:
        self._verifier = SignatureVerifier(secret)
        self._seen = replays.SeenRequests(store, REPLAY_WINDOW)

    def malformed(self, headers: Mapping[str, str]) -> bool:
        """A timestamp that is not a number: Bolt would fail on it with a 500."""
        stamp = headers.get("X-Slack-Request-Timestamp", "0")
        return not (stamp.isascii() and stamp.isdigit())

    def unseen(self, body: str, headers: Mapping[str, str]) -> replays.Unseen | None:
        """The request, to be noted as seen; None for a bad signature, which is Bolt's to refuse."""
        stamp = headers.get("X-Slack-Request-Timestamp", "0")
        signature = headers.get("X-Slack-Signature", "")
        if not self._verifier.is_valid(body, stamp, signature):
            return None
        return replays.Unseen(self._seen, signature, time.time())


class Replayed(Exception):
    """The request turned out to be a copy: its handler stops there, having done nothing."""


# The request being handled, not yet known to be no copy (see `SlackSurface.handle`). A click's answer to
# Slack carries nothing, and every click handler acknowledges before it does anything else: so a click is
# acknowledged at once, and whether it is a copy is known (in the database, shared by the instances) by the
# time its handler would act. A command's answer carries what it did: the command is noted as seen in the
# transaction of the draft it makes, or else on its own before it does anything. See `_after_ack`.
_UNSEEN: ContextVar[replays.Unseen | None] = ContextVar("unseen", default=None)

# The words of commands that make no draft (`_command`): these are known not to be copies before they act.
COMMAND_WORDS = frozenset({"help", "?", "retract", "move", "cancel", "status", "history", "accounts"})

REPLAYED = "replayed request"


async def _copy(unseen: replays.Unseen | None) -> bool:
    return unseen is not None and await unseen.copy()


def kind_of(body: str) -> str | None:
    """What a request is (`command`, an interaction's type such as `block_actions`, or `other`), read once; None
    if it lacks what the listeners read before they can answer: a command's user, an interaction's JSON object
    with its user and (for a click) its actions. Slack always sends these; anything else is refused with 400 here
    rather than failing with a 500 inside Bolt. Other bodies (Slack's SSL check) are Bolt's to answer."""
    form = dict(parse_qsl(body))
    if "command" in form:
        return "command" if form.get("user_id") and acting_team(form) is not None else None
    if "payload" not in form:
        return "other"
    try:
        payload = json.loads(form["payload"])
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("user"), dict) or not payload["user"].get("id"):
        return None
    if acting_team(payload) is None:
        return None
    kind = str(payload.get("type"))
    actions = payload.get("actions")
    if kind == "block_actions" and not (
        isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions)
    ):
        return None
    if kind == "view_submission" and not isinstance(payload.get("view"), dict):
        return None
    return kind


def acting_team(body: Mapping[str, Any]) -> str | None:
    """The workspace a request belongs to, read in Bolt's own order (`extract_team_id`): a modal's
    `view.app_installed_team_id`, then `team.id`, then a command's `team_id`, and only then the person's
    `user.team_id` (an org-wide install's interactions may come with no team)."""
    return extract_team_id(dict(body))


def ours(body: Mapping[str, Any], team: str | None, enterprise: str | None) -> bool:
    """Whether the person acting belongs to the app's workspace `team` or, on Enterprise Grid, to its
    organisation `enterprise`. A person whose own workspace (`user.team_id`) is not the app's is a guest from
    another organisation in a shared channel, unless the request comes from the app's own organisation: a
    Grid member whose home is another of its workspaces, or anyone of the org with an org-wide install."""
    acting = acting_team(body)
    if acting is None:  # no one acting (Slack's SSL check): kind_of let nothing else by
        return True
    same_org = enterprise is not None and extract_enterprise_id(dict(body)) == enterprise
    if acting != team and not same_org:
        return False
    user = body.get("user")
    own = user.get("team_id") if isinstance(user, dict) else None
    return own in (None, team) or same_org


class SlackSurface:
    """Wires Bolt listeners to the core, and keeps each broadcast's live report up to date."""

    def __init__(self, settings: Settings, broadcasts: Broadcasts, accounts: Accounts | None = None) -> None:
        self.broadcasts = broadcasts
        self.config = broadcasts.config
        self.timeout = whole_seconds(settings.http_timeout)
        secret = settings.secret("SLACK_SIGNING_SECRET")
        # Report and approval messages are not posts of the broadcast: a rate-limited edit may simply be
        # retried; a dropped connection is not, as a retried chat.postMessage could land twice.
        # One connection pool for all of them (slack_sdk otherwise opens a connection per call); made here,
        # in the running loop, and closed with the surface.
        session = aiohttp.ClientSession(timeout=client_timeout(settings.http_timeout))
        self.client: AsyncWebClient = web_client(
            settings, [AsyncRateLimitErrorRetryHandler(max_retry_count=2)], session=session
        )
        # Bolt's default mode looks for the acknowledgement every 10 ms (slack_bolt/listener/asyncio_runner.py):
        # that adds up to 10 ms to every answer and, with many requests in flight, keeps the loop busy waking
        # them. So Bolt waits for the handler (`process_before_response`), and `_after_ack` lets each handler
        # go on in the background once it has acknowledged: Slack's answer leaves the moment `ack()` returns.
        self.app = AsyncApp(
            client=self.client, signing_secret=secret.value if secret else None, process_before_response=True
        )
        self._handlers: set[asyncio.Task[None]] = set()
        self.replays = ReplayGuard(settings.reveal("SLACK_SIGNING_SECRET"), broadcasts.store)
        self.reports = ReportRefresher(self._draw_report, REPORT_SPACING, broadcasts.store.exclusive)
        self.accounts = (
            SlackAccounts(
                accounts,
                self.config.policy,
                self._respond,
                broadcasts.clock,
                settings.reveal("BLUESKY_PDS_URL") or "https://bsky.social",
            )
            if accounts is not None
            else None
        )
        self._register()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /slack/events: commands, button clicks and modal submissions."""
        if request.content_type != FORM:
            return web.json_response({"error": f"Slack sends commands and clicks as {FORM}"}, status=415)
        try:
            body = await request.text()
        except UnicodeDecodeError:
            return web.json_response({"error": "the body is not UTF-8"}, status=400)
        if self.replays.malformed(request.headers):
            return web.json_response({"error": "invalid request"}, status=401)
        kind = kind_of(body)
        if kind is None:
            return web.json_response({"error": "malformed request"}, status=400)
        unseen = self.replays.unseen(body, request.headers)
        if unseen is not None and kind not in ("command", "block_actions"):
            if await unseen.copy():  # a modal or a shortcut: rare, and looked at before anything else
                log.warning("refused a copy of a Slack request already received")
                return web.json_response({"error": REPLAYED}, status=401)
            unseen = None
        if unseen is not None and kind == "block_actions":
            unseen.look()  # beside the dispatch: known by the time the handler acts
        # The handler's task, made while this is set, asks it whether the request is a copy.
        handled = _UNSEEN.set(unseen)
        try:
            return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))
        finally:
            _UNSEEN.reset(handled)

    async def _own_workspace_only(
        self, context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Only people of the workspace the app is installed in (or, on Enterprise Grid, of its organisation)
        may act. Slack member ids are unique within a workspace, not across workspaces, and people from another
        organisation can press buttons in a shared (Slack Connect) channel: without this, a namesake id
        elsewhere would count as an approver. See `ours`."""
        authorized = context.authorize_result
        if ours(body, authorized.team_id if authorized else None, authorized.enterprise_id if authorized else None):
            await next()
            return None
        log.warning("refused a Slack request from another workspace")
        if body.get("type") == "view_submission":
            return BoltResponse(
                status=200,
                body=json.dumps({"response_action": "errors", "errors": {"message": OTHER_WORKSPACE}}),
                headers={"content-type": "application/json"},
            )
        if body.get("type") == "block_actions":
            await self._respond(body.get("response_url"), body["user"]["id"], replace=False, text=OTHER_WORKSPACE)
            return BoltResponse(status=200, body="")
        return BoltResponse(
            status=200,
            body=json.dumps({"response_type": "ephemeral", "text": OTHER_WORKSPACE}),
            headers={"content-type": "application/json"},
        )

    def _register(self) -> None:
        app = self.app
        app.middleware(self._own_workspace_only)
        app.command("/broadcast")(self._after_ack(self._command))
        app.action("approve")(self._after_ack(self._approve))
        app.action("reject")(self._after_ack(self._reject))
        app.action("cancel")(self._after_ack(self._cancel))
        app.action("edit")(self._after_ack(self._edit))
        app.action("retract")(self._after_ack(self._retract))
        app.action("correct")(self._after_ack(self._open_correction))
        app.action("repost")(self._after_ack(self._repost))
        app.view("correct")(self._after_ack(self._correction_submitted))
        app.action("schedule")(self._after_ack(self._schedule))
        app.action("send_date")(self._after_ack(self._picked))
        app.action("send_time")(self._after_ack(self._picked))
        app.action("choose_audience")(self._after_ack(self._choose_audience))
        app.view("compose")(self._after_ack(self._compose_submitted))
        app.shortcut("broadcast_message")(self._after_ack(self._broadcast_message))
        app.view("edit")(self._after_ack(self._edit_submitted))
        if self.accounts is not None:
            self.accounts.register(app, self._after_ack)

    def _after_ack(
        self, handler: Callable[..., Coroutine[Any, Any, None]]
    ) -> Callable[..., Awaitable[BoltResponse | None]]:
        """Run `handler` until it acknowledges (or ends), then leave the rest of it running on its own."""

        @functools.wraps(handler)  # Bolt passes arguments by the names `handler` declares
        async def run(**kwargs: Any) -> BoltResponse | None:
            answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()  # acknowledged, or ended
            ack = kwargs["ack"]
            unseen = _UNSEEN.get()

            def settle(acknowledged: bool) -> None:
                if not answered.done():
                    answered.set_result(acknowledged)

            async def ack_and_answer(*args: Any, **options: Any) -> None:
                """An answer that carries something waits to know the request is no copy; one that carries
                nothing (a click's) leaves at once, and the handler stops after it if it is a copy."""
                if (args or options) and await _copy(unseen):
                    raise Replayed
                try:
                    await ack(*args, **options)
                finally:
                    settle(True)
                if await _copy(unseen):
                    raise Replayed

            task = asyncio.create_task(handler(**{**kwargs, "ack": ack_and_answer}))
            task.add_done_callback(lambda _: settle(False))
            if await answered:
                self._handlers.add(task)
                task.add_done_callback(self._handler_done)
                return None
            if not task.cancelled() and isinstance(task.exception(), Replayed):  # found out before it answered
                log.warning("refused a copy of a Slack request already received")
                return BoltResponse(status=401, body=json.dumps({"error": REPLAYED}))
            task.result()  # an error before the acknowledgement is Bolt's to answer
            return None

        return run

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        if not task.cancelled() and isinstance(task.exception(), Replayed):
            log.warning("refused a copy of a Slack request already received")
            return  # acknowledged, and nothing done
        if not task.cancelled() and task.exception() is not None:
            log.error("a Slack handler failed after answering", exc_info=task.exception())

    # ---- the command and the composer -------------------------------------------------------------

    async def _command(
        self, ack: Callable[..., Awaitable[None]], command: dict[str, Any], client: AsyncWebClient
    ) -> None:
        who = actor(command["user_id"])
        text = (command.get("text") or "").strip()
        word, _, rest = text.partition(" ")
        unseen = _UNSEEN.get()
        if (not text or word.lower() in COMMAND_WORDS) and await _copy(unseen):
            raise Replayed  # a command that may act without making a draft: known to be no copy first
        if text.lower() in ("help", "?"):
            await ack(text=blocks.usage(policy.needs_second_person(self.config.policy)), response_type="ephemeral")
            return
        if word.lower() == "retract" and BROADCAST_ID.match(rest.strip()):
            await ack()
            target = rest.strip()
            try:
                approval = await self.broadcasts.retract(who, target, where=_where(command.get("channel_id")))
            except Refused as error:
                await self._respond(command.get("response_url"), command["user_id"], replace=False, text=str(error))
                return
            await self._respond(
                command.get("response_url"),
                command["user_id"],
                replace=False,
                text=blocks.decided(approval.broadcast, self.config.policy),
            )
            return
        if word.lower() in ("move", "cancel") and BROADCAST_ID.match(rest.strip().split(" ")[0]):
            await ack()
            answer = await self._move_or_cancel(who, word.lower(), rest.split(), command)
            await self._respond(command.get("response_url"), command["user_id"], replace=False, text=answer)
            return
        if word.lower() == "status" and BROADCAST_ID.match(rest.strip()):
            try:
                one = await self.broadcasts.status(who, rest.strip())
            except Refused as error:
                await ack(text=str(error), response_type="ephemeral")
                return
            await ack(response_type="ephemeral", **blocks.history([one], detailed=True))
            return
        if text.lower() in ("status", "history"):
            try:
                shown = await self.broadcasts.history(who, 5 if text.lower() == "status" else 20)
            except Refused as error:
                await ack(text=str(error), response_type="ephemeral")
                return
            await ack(response_type="ephemeral", **blocks.history(shown, detailed=text.lower() == "status"))
            return
        decision = policy.may_request(self.config.policy, who)
        if not decision.allowed:
            await ack(text=decision.reason, response_type="ephemeral")
            return
        if text.lower() == "accounts" and self.accounts is not None:
            await ack(response_type="ephemeral", **await self.accounts.message(who))
            return
        if not text:
            await ack()
            metadata = {"response_url": command.get("response_url")}
            await client.views_open(
                trigger_id=command["trigger_id"],
                view=blocks.composer(self.broadcasts.audiences, self.config.policy.default_audience, metadata),
            )
            return
        try:
            broadcast = await self.broadcasts.request(
                who,
                text,
                None,
                ORIGIN,
                {"channel": command.get("channel_id")},
                where=_where(command.get("channel_id")),
                unseen=unseen,
            )
        except (InputError, Refused) as error:
            await ack(text=str(error), response_type="ephemeral")
            return
        except replays.Copy:
            raise Replayed from None
        await ack(**await self._preview_message(broadcast))

    async def _broadcast_message(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The message shortcut "Broadcast this message": the composer, holding a message its author wrote,
        with its images (named; the alt text is asked for in the form)."""
        await ack()
        user, message = body["user"]["id"], body.get("message") or {}
        decision = policy.may_request(self.config.policy, actor(user))
        refusal = None if decision.allowed else decision.reason
        if refusal is None and message.get("user") != user:
            refusal = "Only a message you wrote can be broadcast: copy it into /broadcast instead."
        images = slack_files.images_of(message)
        if refusal is None and len(images) > MAX_IMAGES:
            refusal = f"The message has {len(images)} images; a broadcast carries at most {MAX_IMAGES}."
        metadata = {"response_url": body.get("response_url"), "files": images}
        try:
            view = blocks.composer(
                self.broadcasts.audiences,
                self.config.policy.default_audience,
                metadata,
                str(message.get("text") or ""),
                attached=[image["name"] for image in images],
            )
        except ValueError:
            refusal = refusal or f"The message is longer than Slack's form holds ({blocks.INPUT_MAX:,} characters)."
        if refusal is not None:
            await self._respond(body.get("response_url"), user, replace=False, text=refusal)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def _compose_submitted(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        async def request(who: str, text: str, audience: str, _: dict[str, Any]) -> Broadcast:
            attached = await slack_files.attachments(self.client, view)
            return await self.broadcasts.request(
                who, text, audience, ORIGIN, {}, where=_where(None), attachments=attached
            )

        await self._form_submitted(ack, body, view, request, replace=False)

    async def _edit_submitted(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        async def change(who: str, text: str, audience: str, metadata: dict[str, Any]) -> Broadcast:
            return await self.broadcasts.change(
                who, metadata["broadcast_id"], text=text, audience=audience, where=_where(None)
            )

        await self._form_submitted(ack, body, view, change, replace=True)

    async def _form_submitted(
        self,
        ack: Callable[..., Awaitable[None]],
        body: dict[str, Any],
        view: dict[str, Any],
        step: Callable[[str, str, str, dict[str, Any]], Awaitable[Broadcast]],
        replace: bool,
    ) -> None:
        """A composer (new or Edit) was submitted: refuse in the form, or show the new preview."""
        text, audience = _form(view)
        metadata = json.loads(view.get("private_metadata") or "{}")
        try:
            broadcast = await step(actor(body["user"]["id"]), text, audience, metadata)
        except (InputError, Refused) as error:
            await ack(response_action="errors", errors={"message": str(error)})
            return
        await ack()
        preview = await self._preview_message(broadcast)
        await self._respond(metadata.get("response_url"), body["user"]["id"], replace=replace, **preview)

    async def _edit(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        broadcast = await self._guarded(
            body, lambda who, broadcast_id, _: self.broadcasts.for_change(who, broadcast_id)
        )
        if broadcast is None:
            return
        metadata = {"broadcast_id": broadcast.id, "response_url": body.get("response_url")}
        await client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.composer(self.broadcasts.audiences, broadcast.audience, metadata, broadcast.text, "edit"),
        )

    # ---- buttons -----------------------------------------------------------------------------------

    async def _choose_audience(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        audience = action["selected_option"]["value"]
        broadcast_id = body["actions"][0]["block_id"].split(":", 1)[1]
        broadcast = await self._guarded(
            body, lambda who, _, where: self.broadcasts.change(who, broadcast_id, audience=audience, where=where)
        )
        if broadcast is not None:
            await self._respond(
                body.get("response_url"), body["user"]["id"], replace=True, **await self._preview_message(broadcast)
            )

    async def _cancel(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        broadcast = await self._guarded(
            body, lambda who, broadcast_id, where: self.broadcasts.cancel(who, broadcast_id, where=where)
        )
        if broadcast is not None:
            await self._respond(
                body.get("response_url"),
                body["user"]["id"],
                replace=True,
                text=blocks.decided(broadcast, self.config.policy),
            )

    async def _approve(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        approval = await self._guarded(
            body, lambda who, broadcast_id, where: self.broadcasts.approve(who, broadcast_id, where=where)
        )
        if approval is None:
            return
        broadcast = approval.broadcast
        text = blocks.decided(broadcast, self.config.policy)
        if not approval.sent:
            text += " You will get the delivery report once it is approved."
        elif broadcast.origin == ORIGIN:
            link = await self.start_report(broadcast.id)
            text += f" Live report: {link}" if link else ""
        await self._respond(body.get("response_url"), body["user"]["id"], replace=True, text=text)

    async def _move_or_cancel(self, who: str, verb: str, words: list[str], command: dict[str, Any]) -> str:
        """`/broadcast move <id> <YYYY-MM-DD> <HH:MM>` (on the leader's clock) or `/broadcast cancel <id>`."""
        where = _where(command.get("channel_id"))
        try:
            if verb == "cancel":
                cancelled = await self.broadcasts.unschedule(who, words[0], where=where)
                return blocks.decided(cancelled, self.config.policy)
            if len(words) != 3:
                return "Write it as `/broadcast move <id> 2026-12-01 09:00` (your own time)."
            zone = await self._zone(command["user_id"])
            send_at = schedule.instant(words[1], words[2], zone, self.broadcasts.clock())
            await self.broadcasts.reschedule(who, words[0], send_at, where=where)
            return f"Moved `{words[0]}` to {schedule.shown(send_at, zone)}."
        except (Refused, NoZone, schedule.ScheduleError) as error:
            return str(error)

    async def _open_correction(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The report's 'Correct staff posts…': a composer holding the text as sent."""
        await ack()
        broadcast = await self._guarded(
            body, lambda who, broadcast_id, _: self.broadcasts.for_correction(who, broadcast_id)
        )
        if broadcast is None:
            return
        if len(broadcast.text) > blocks.INPUT_MAX:
            await self._respond(
                body.get("response_url"), body["user"]["id"], replace=False, **blocks.too_long_to_correct(broadcast)
            )
            return
        metadata = {"broadcast_id": broadcast.id, "response_url": body.get("response_url")}
        view = blocks.composer(self.broadcasts.audiences, broadcast.audience, metadata, broadcast.text, "correct")
        view["blocks"] = view["blocks"][:1]  # the audience stays as sent
        view["title"]["text"] = "Correct staff posts"
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def _correction_submitted(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        text = view["state"]["values"]["message"]["message"].get("value") or ""
        metadata = json.loads(view.get("private_metadata") or "{}")
        user = body["user"]["id"]
        try:
            approval = await self.broadcasts.correct(actor(user), metadata["broadcast_id"], text, where=_where(None))
        except (InputError, Refused) as error:
            await ack(response_action="errors", errors={"message": str(error)})
            return
        await ack()
        await self._respond(metadata.get("response_url"), user, replace=False, **blocks.corrected(approval))

    async def _repost(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        """'Retract and post again': the public networks cannot edit, so the corrected text goes out anew."""
        await ack()
        approval = await self._guarded(
            body, lambda who, broadcast_id, where: self.broadcasts.retract(who, broadcast_id, where=where)
        )
        if approval is None:
            return
        again = await self._guarded(
            body,
            lambda who, _, where: self.broadcasts.request(
                who, approval.broadcast.text, approval.broadcast.audience, ORIGIN, {}, where=where
            ),
        )
        if again is not None:
            await self._respond(
                body.get("response_url"), body["user"]["id"], replace=False, **await self._preview_message(again)
            )

    async def _picked(self, ack: Callable[..., Awaitable[None]]) -> None:
        """A day or a time was picked: nothing happens until the Schedule button."""
        await ack()

    async def _schedule(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        user = body["user"]["id"]
        broadcast_id = body["actions"][0]["value"]
        picked = ((body.get("state") or {}).get("values") or {}).get(f"schedule:{broadcast_id}", {})
        date = (picked.get("send_date") or {}).get("selected_date")
        clock_time = (picked.get("send_time") or {}).get("selected_time")
        if not date or not clock_time:
            await self._respond(body.get("response_url"), user, replace=False, text="Pick a day and a time first.")
            return
        try:
            zone = await self._zone(user)
            send_at = schedule.instant(date, clock_time, zone, self.broadcasts.clock())
        except (NoZone, schedule.ScheduleError) as error:
            await self._respond(body.get("response_url"), user, replace=False, text=str(error))
            return
        approval = await self._guarded(
            body,
            lambda who, broadcast, where: self.broadcasts.approve(who, broadcast, where=where, send_at=send_at),
        )
        if approval is not None:
            when = schedule.shown(send_at, zone)
            text = f"{blocks.decided(approval.broadcast, self.config.policy)} Scheduled for {when}."
            await self._respond(body.get("response_url"), user, replace=True, text=text)

    async def _zone(self, user: str) -> str:
        """The person's time zone as Slack knows it (users.info). When Slack will not say, `NoZone` tells the
        leader why and nothing is scheduled: a guess (UTC) would send a New York leader's 09:00 at 04:00."""
        try:
            answer = await self.client.users_info(user=user)
        except SlackApiError as error:
            code = str(error.response.get("error", ""))
            log.warning("Slack would not give a person's time zone: %s", code)
            if code == "missing_scope":
                raise NoZone(f"{NO_ZONE} {explain(code)}") from None
            raise NoZone(f"{NO_ZONE} Slack answered {code}; try again in a moment.") from None
        except Exception as error:
            log.warning("could not reach Slack for a person's time zone: %s", type(error).__name__)
            raise NoZone(f"{NO_ZONE} Slack could not be reached; try again in a moment.") from None
        zone = (answer.get("user") or {}).get("tz")
        if not zone:
            raise NoZone(f"{NO_ZONE} Set your time zone in your Slack profile, then try again.")
        return str(zone)

    async def _retract(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        approval = await self._guarded(
            body, lambda who, broadcast_id, where: self.broadcasts.retract(who, broadcast_id, where=where)
        )
        if approval is not None:
            text = blocks.decided(approval.broadcast, self.config.policy)
            await self._respond(body.get("response_url"), body["user"]["id"], replace=False, text=text)

    async def _reject(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        await self._guarded(
            body, lambda who, broadcast_id, where: self.broadcasts.reject(who, broadcast_id, where=where)
        )

    async def pending(self, broadcast: Broadcast) -> None:
        await self._ask_approvers(broadcast)

    async def decided(self, broadcast: Broadcast) -> None:
        await self._close_approval_requests(broadcast)
        if broadcast.origin != ORIGIN:
            return
        if broadcast.state in (BroadcastState.APPROVED, BroadcastState.RETRACTED):
            await self.start_report(broadcast.id)
        elif broadcast.state is BroadcastState.REJECTED:
            await self._notify(broadcast.author, blocks.decided(broadcast, self.config.policy))

    async def _guarded(self, body: dict[str, Any], step: Callable[[str, str, Where], Awaitable[Any]]) -> Any:
        """Run one step as the clicker; a refusal is told to them alone, and changes nothing."""
        user = body["user"]["id"]
        broadcast_id = body["actions"][0].get("value") or body["actions"][0]["block_id"].split(":", 1)[1]
        try:
            return await step(actor(user), broadcast_id, _where((body.get("channel") or {}).get("id")))
        except (InputError, Refused) as error:
            await self._respond(body.get("response_url"), user, replace=False, text=str(error))
            return None

    # ---- messages ------------------------------------------------------------------------------------

    async def _preview_message(self, broadcast: Broadcast) -> dict[str, Any]:
        renderings = await self.broadcasts.rendered(broadcast)
        return {
            "response_type": "ephemeral",
            "text": f"Preview of broadcast {broadcast.id} to {broadcast.audience}",
            "blocks": blocks.preview(
                broadcast,
                renderings,
                self.broadcasts.configs(broadcast),
                self.broadcasts.audiences,
                policy.needs_second_person(self.config.policy) and broadcast.state is BroadcastState.DRAFT,
            ),
        }

    async def _respond(self, response_url: str | None, user: str, replace: bool, **message: Any) -> None:
        """Answer the clicker in place (through the interaction's response_url), or by DM without one."""
        if response_url:
            payload = {**message, "replace_original": replace}
            if not replace:
                payload["response_type"] = "ephemeral"
            webhook = AsyncWebhookClient(
                response_url, timeout=self.timeout, retry_handlers=[], session=self.client.session
            )
            answer = await self._safe(webhook.send_dict(payload))
            if answer is not None and answer.status_code < 300:
                return
            log.warning("Slack's response_url did not take the answer; sending it by DM instead")
        message.pop("response_type", None)
        await self._safe(self.client.chat_postMessage(channel=user, **message))

    async def tell(self, person: str, text: str, reconnect: str | None = None) -> None:
        """A private word about the person's own accounts (relay.accounts), by DM; with a button to connect the
        account again where it must be."""
        if not person.startswith("slack:"):
            return
        message: dict[str, Any] = {"text": text}
        if reconnect is not None and self.accounts is not None:
            message = await self.accounts.reminder(person, text, reconnect)
        await self._safe(self.client.chat_postMessage(channel=person.split(":", 1)[1], **message))

    async def _notify(self, who: str, text: str) -> None:
        if who.startswith("slack:"):
            await self._safe(self.client.chat_postMessage(channel=who.split(":", 1)[1], text=text))

    async def _ask_approvers(self, broadcast: Broadcast) -> None:
        renderings = await self.broadcasts.rendered(broadcast, broadcast.pending_text)
        message: dict[str, Any] = {
            "text": f"Approval requested for broadcast {broadcast.id}",
            "blocks": blocks.approval_request(
                broadcast, renderings, self.broadcasts.configs(broadcast), self.config.policy
            ),
        }
        targets = (
            [self.config.policy.approval_channel]
            if self.config.policy.approval_channel
            else [
                a.split(":", 1)[1]
                for a in sorted(self.config.policy.approvers)
                if a.startswith("slack:") and not self.config.policy.same_person(a, broadcast.author)
            ]
        )
        posted = []
        for target in targets:
            answer = await self._safe(self.client.chat_postMessage(channel=target, **message))
            if answer is not None:
                posted.append([answer["channel"], answer["ts"]])
        await self.broadcasts.remember(broadcast.id, "slack_approvals", posted)

    async def _close_approval_requests(self, broadcast: Broadcast) -> None:
        """Replace every approval request's buttons with the decision, so nobody clicks a stale one."""
        for channel, ts in broadcast.report_ref.get("slack_approvals", []):
            await self._safe(
                self.client.chat_update(
                    channel=channel, ts=ts, text=blocks.decided(broadcast, self.config.policy), blocks=[]
                )
            )

    async def start_report(self, broadcast_id: str) -> str | None:
        """Make sure the live report exists in the author's DM, and link to it."""
        where = await self._report_message(broadcast_id)
        self.refresh(broadcast_id)
        if where is None:
            return None
        link = await self._safe(self.client.chat_getPermalink(channel=where[0], message_ts=where[1]))
        return str(link["permalink"]) if link is not None else None

    async def _report_message(self, broadcast_id: str, known: Broadcast | None = None) -> tuple[str, str] | None:
        """Where the live report is: as recorded (in `known`, if the caller has just read the broadcast);
        else, if a crash may have come between posting it and recording it, found in the DM by its
        metadata; else posted now. Only the last two need every other instance kept out."""
        ref = (known or await self.broadcasts.get(broadcast_id)).report_ref.get("slack_report")
        if ref:
            return str(ref["channel"]), str(ref["ts"])
        async with self.broadcasts.store.exclusive(f"first report:{broadcast_id}"):
            broadcast = await self.broadcasts.get(broadcast_id)
            ref = broadcast.report_ref.get("slack_report")
            if ref:
                return str(ref["channel"]), str(ref["ts"])
            user = broadcast.author.split(":", 1)[1]
            posting = broadcast.report_ref.get("slack_report_posting")
            found = await self._find_report(user, broadcast) if posting else None
            if found is None:
                await self.broadcasts.remember(broadcast_id, "slack_report_posting", True)
                text, report_blocks = blocks.report(broadcast, await self.broadcasts.report(broadcast_id))
                marker = Metadata(event_type=REPORT_EVENT, event_payload={"broadcast_id": broadcast_id})
                answer = await self._safe(
                    self.client.chat_postMessage(channel=user, text=text, blocks=report_blocks, metadata=marker)
                )
                if answer is None:
                    return None
                found = (str(answer["channel"]), str(answer["ts"]))
            # The report is there whether or not the disk takes its address now (full): it is found again
            # by its metadata, as after a crash, and the clicker still gets their answer.
            with contextlib.suppress(Unwritable):
                await self.broadcasts.remember(broadcast_id, "slack_report", {"channel": found[0], "ts": found[1]})
            return found

    async def _find_report(self, user: str, broadcast: Broadcast) -> tuple[str, str] | None:
        opened = await self._safe(self.client.conversations_open(users=user))
        if opened is None:
            return None
        channel = str(opened["channel"]["id"])
        history = await self._safe(
            self.client.conversations_history(
                channel=channel, oldest=f"{broadcast.created_at:.6f}", include_all_metadata=True, limit=200
            )
        )
        messages: list[dict[str, Any]] = history.get("messages", []) if history is not None else []
        for message in messages:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == REPORT_EVENT and payload.get("broadcast_id") == broadcast.id:
                return channel, str(message["ts"])
        return None

    def refresh(self, broadcast_id: str) -> None:
        """Deliveries changed: the report is edited soon (see ReportRefresher)."""
        self.reports.refresh(broadcast_id)

    async def _draw_report(self, broadcast_id: str) -> int:
        broadcast = await self.broadcasts.get(broadcast_id)
        if broadcast.origin != ORIGIN or broadcast.state not in (BroadcastState.APPROVED, BroadcastState.RETRACTED):
            return 0
        where = await self._report_message(broadcast_id, broadcast)
        if where is None:
            return 0
        now = await self.broadcasts.report(broadcast_id)
        text, report_blocks = blocks.report(broadcast, now)
        await self._safe(self.client.chat_update(channel=where[0], ts=where[1], text=text, blocks=report_blocks))
        return len(now.lines)

    async def settle(self) -> None:
        """Wait until every handler has finished what it does after answering Slack."""
        while self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def close(self) -> None:
        """Let handlers finish what they started (a decision is already recorded; its messages follow)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), SETTLE_AT_CLOSE)
        await self.reports.close()
        if self.client.session is not None:
            await self.client.session.close()

    @staticmethod
    async def _safe(call: Awaitable[Any]) -> Any:
        """A chat message about a broadcast failing must not break the broadcast: log it and go on."""
        try:
            return await call
        except SlackApiError as error:
            log.warning("Slack refused a report or approval message: %s", error.response.get("error"))
        except Exception as error:
            log.warning("could not reach Slack for a report or approval message: %s", type(error).__name__)
        return None


def _form(view: dict[str, Any]) -> tuple[str, str]:
    values = view["state"]["values"]
    text = values["message"]["message"].get("value") or ""
    audience = values["audience"]["audience"]["selected_option"]["value"]
    return text, audience

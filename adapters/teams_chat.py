"""The Teams surface: `broadcast <message>` to the bot, Adaptive Card previews, approvals, live reports.

Served at `POST /api/messages` on the bot's one aiohttp server, through the Microsoft 365 Agents SDK.
Every request's token is checked (JWT) whenever app credentials are configured; the tenant of every
activity is checked against the app's; every card action is checked against the policy for the person
who clicked, by their Entra object id.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from aiohttp import web
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    ContentTypes,
    ConversationAccount,
    ConversationReference,
)
from microsoft_agents.activity.teams import TeamsChannelData
from microsoft_agents.hosting.core import (
    AgentApplication,
    ApplicationOptions,
    CardFactory,
    ClaimsIdentity,
    ConnectorClientBase,
    JwtTokenValidator,
    MemoryStorage,
    MessageFactory,
    TeamsConnectorClient,
    TurnContext,
    TurnState,
)

from adapters import teams_accounts, teams_files
from adapters import teams_cards as cards
from adapters.teams import Directory, reference_json, shared_connection
from relay import images, policy, schedule
from relay.accounts import Accounts, SignInFailed
from relay.audit import Where
from relay.broadcasts import BROADCAST_ID, Approval, Broadcasts, Refused
from relay.config import Settings
from relay.model import Broadcast, BroadcastState
from relay.render import InputError
from relay.reports import ReportRefresher
from relay.store import Store

log = logging.getLogger(__name__)

ORIGIN = "teams"
# The preview's buttons that act on the draft it shows: each saves the alt text typed in its fields first.
_WITH_ALT_TEXT = ("alt", "approve", "schedule", "edit", "audience")
REPORT_SPACING = 1.0  # Teams allows a bot about 7 messages a second per conversation; edits count too
NAMES_KEPT = 10_000  # display names of the people who last wrote or clicked, kept in memory
_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
# Teams sends what a person wrote as HTML: a link it shows as a link (a typed URL, or a label with a URL
# behind it) is an anchor, and `<`, `>` and `&` they typed are escaped.
_ANCHOR = re.compile(r"<a\s[^>]*?href=\"([^\"]*)\"[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_FORMATTING = re.compile(
    r"</?(?:p|div|span|b|strong|i|em|u|s|strike|code|pre|blockquote|ol|ul|li|h[1-6]|img)\b[^>]*>", re.IGNORECASE
)
# Slack markup typed as text, once escaped: a link `<https://…|label>` (the README tells leaders to write
# it), or a special mention such as `<!here>`, read as in Slack (and held back as there).
_TYPED_LINK = re.compile(r"&lt;((?:https?://|mailto:|[!@#])[^\s|<>]+?)(?:\|(.*?))?&gt;", re.DOTALL)
_HELD = re.compile("\ue000(\\d+)\ue001")  # a labelled link set aside while the text around it is read


def actor(activity: Activity) -> str | None:
    aad = activity.from_property.aad_object_id if activity.from_property else None
    return f"teams:{aad}" if aad else None


def _slack_escaped(text: str) -> str:
    """Literal text as Slack escapes it, which is how the relay reads a message (README: "Write in Slack
    formatting"): `<` and `>` are only ever markup once escaped this way."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def command_text(activity: Activity) -> str:
    """What the person wrote, in the relay's Slack-style markup: without the @mention of the bot and
    Teams' formatting tags; links, typed or made with Teams' link button, as `<url|label>`; every other
    `<`, `>` and `&` as the writer's own text."""
    held: list[str] = []

    def anchor(match: re.Match[str]) -> str:
        url = html.unescape(match.group(1))
        label = html.unescape(_FORMATTING.sub("", match.group(2))).strip()
        if label in ("", url):
            return html.escape(url, quote=False)  # read on as typed text, so `<` + URL + `|label>` is a link
        held.append(f"<{_slack_escaped(url)}|{_slack_escaped(label)}>")
        return f"\ue000{len(held) - 1}\ue001"

    text = _ANCHOR.sub(anchor, _MENTION.sub(" ", activity.text or ""))
    text = _slack_escaped(html.unescape(_FORMATTING.sub("", _BREAK.sub("\n", text))))
    text = _TYPED_LINK.sub(lambda m: f"<{m.group(1)}|{m.group(2)}>" if m.group(2) else f"<{m.group(1)}>", text)
    return _HELD.sub(lambda m: held[int(m.group(1))], text).strip()


class _Request:
    """The SDK's view of an aiohttp request, once we have checked its token ourselves."""

    def __init__(self, request: web.Request, identity: ClaimsIdentity) -> None:
        self._request = request
        self._identity = identity
        self.method = request.method
        self.headers = request.headers

    async def json(self) -> dict[str, Any]:
        body: dict[str, Any] = await self._request.json()
        return body

    def get_claims_identity(self) -> ClaimsIdentity:
        return self._identity

    def get_path_param(self, name: str) -> str:
        return self._request.match_info[name]


class TeamsSurface:
    def __init__(
        self, settings: Settings, broadcasts: Broadcasts, store: Store, accounts: Accounts | None = None
    ) -> None:
        self.accounts = accounts
        self.bluesky_pds = settings.reveal("BLUESKY_PDS_URL") or "https://bsky.social"
        self.settings = settings
        self.broadcasts = broadcasts
        self.config = broadcasts.config
        self.connection = shared_connection(settings)  # the channels' own: one token cache, one pool
        self.directory = Directory(store)
        self.reports = ReportRefresher(self._draw_report, REPORT_SPACING, store.exclusive)
        self.names: dict[str, str] = {}  # relay id → the name Teams last showed for them, newest last
        self.agent = AgentApplication[TurnState](
            ApplicationOptions(storage=MemoryStorage(), start_typing_timer=False),
            connection_manager=self.connection.connections,
        )
        self.agent.add_route(lambda c: c.activity.type == ActivityTypes.conversation_update, self._on_update)
        self.agent.activity(ActivityTypes.message)(self._on_message)
        self.agent.adaptive_card.action_execute(re.compile(".*"))(self._on_action)
        self.agent.error(self._on_error)

    # ---- the HTTP endpoint -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """POST /api/messages. The token is checked here rather than by the SDK's middleware, which
        answers 500 instead of 401 to some forged tokens."""
        identity = await self._authenticate(request.headers.get("Authorization"))
        if identity is None:
            return web.json_response({"error": "unauthorized"}, status=401)
        if not await _looks_like_an_activity(request):
            return web.json_response({"error": "not a Teams activity"}, status=400)
        try:
            answer = await self.connection.adapter.process_request(_Request(request, identity), self.agent)
        except ValueError:  # a body that is JSON but not an activity
            return web.json_response({"error": "not an activity"}, status=400)
        if answer.body is not None:
            return web.json_response(answer.body, status=answer.status_code, headers=answer.headers)
        return web.Response(status=answer.status_code, headers=answer.headers)

    async def _authenticate(self, header: str | None) -> ClaimsIdentity | None:
        if not header:
            return ClaimsIdentity() if self.connection.anonymous else None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return await JwtTokenValidator(self.connection.auth).validate_token(token.strip())
        except Exception:  # forged, expired, for another app, or its keys unreachable: all mean "no"
            log.warning("refused a Teams request whose token did not validate")
            return None

    def _admitted(self, activity: Activity) -> bool:
        """Only the app's own tenant, when one is configured."""
        expected = self.settings.teams_tenant
        tenant = activity.conversation.tenant_id if activity.conversation else None
        if not tenant and isinstance(activity.channel_data, dict):
            tenant = (activity.channel_data.get("tenant") or {}).get("id")
        if expected and tenant != expected:
            log.warning("refused a Teams activity from another tenant")
            return False
        return True

    async def _on_error(self, context: TurnContext, error: Exception) -> None:
        log.error("Teams turn failed: %s", type(error).__name__, exc_info=error)

    # ---- where the bot is installed -----------------------------------------------------------------

    async def _on_update(self, context: TurnContext, state: TurnState) -> None:
        activity = context.activity
        if not self._admitted(activity):
            return
        data = TeamsChannelData.model_validate(activity.channel_data or {})
        bot = activity.recipient.id if activity.recipient else None
        added = any(m.id == bot for m in activity.members_added or [])
        removed = any(m.id == bot for m in activity.members_removed or [])
        reference = activity.get_conversation_reference()
        if data.team is None:
            if added and activity.conversation and activity.conversation.conversation_type == "personal":
                await self._remember_personal(activity)
            return
        team = (data.team.id or "", data.team.name or "")
        if removed:
            await self.directory.forget(team_id=team[0])
        elif data.event_type == "channelDeleted" and data.channel:
            await self.directory.forget(conversation_id=data.channel.id)
        elif data.event_type in ("channelCreated", "channelRenamed", "channelRestored") and data.channel:
            await self.directory.remember(
                _in(reference, data.channel.id or ""), "channel", data.channel.name or "", team
            )
        elif added or data.event_type == "teamRenamed":
            await self._learn_team(context, reference, team)

    async def _learn_team(self, context: TurnContext, reference: ConversationReference, team: tuple[str, str]) -> None:
        """The bot was added to a team: remember every channel it may now post in."""
        await self.directory.remember(_in(reference, team[0]), "channel", "General", team)
        client = context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]  # the SDK's own key
        if not isinstance(client, TeamsConnectorClient):
            return
        try:
            channels = await client.fetch_channel_list(team[0])
        except Exception as error:  # the General channel is known; the others come with their events
            log.warning("could not list the channels of team %s: %s", team[1], type(error).__name__)
            return
        for channel in channels:
            if channel.id:
                await self.directory.remember(_in(reference, channel.id), "channel", channel.name or "General", team)

    def _saw(self, activity: Activity) -> None:
        """Teams names the sender on every activity, a click in a channel included: an approver who never
        wrote to the bot in a chat is still named on the cards their decision changes (in the same turn)."""
        who = actor(activity)
        name = activity.from_property.name if activity.from_property else None
        if who and name:
            self.names.pop(who, None)
            self.names[who] = name
            if len(self.names) > NAMES_KEPT:
                del self.names[next(iter(self.names))]

    async def _remember_personal(self, activity: Activity) -> None:
        who = actor(activity)
        if who and activity.conversation and activity.conversation.conversation_type == "personal":
            name = activity.from_property.name if activity.from_property else ""
            await self.directory.remember(activity.get_conversation_reference(), "personal", name or "", user=who)

    # ---- messages: `broadcast <message>` ----------------------------------------------------------

    async def _on_message(self, context: TurnContext, state: TurnState) -> None:
        activity = context.activity
        if not self._admitted(activity):
            await context.send_activity("This bot serves another organisation.")
            return
        who = actor(activity)
        if who is None:
            return
        self._saw(activity)
        await self._remember_personal(activity)
        said = command_text(activity)
        word, _, rest = said.partition(" ")
        rest = rest.strip()
        asked = (rest if word.lower() == "broadcast" else said).lower()
        verb, *words = asked.split() or [""]  # an empty message, or a bare @mention, says nothing
        if verb in ("retract", "move", "cancel") and words and BROADCAST_ID.match(words[0]):
            await context.send_activity(await self._about_sent(verb, words, who, activity))
            return
        if verb == "status" and len(words) == 1 and BROADCAST_ID.match(words[0]):
            await self._privately(context, who, await self._status(who, words[0]))
            return
        if asked in ("status", "history"):
            try:
                shown = await self.broadcasts.history(who, 5 if asked == "status" else 20)
            except Refused as error:
                await context.send_activity(str(error))
                return
            await self._privately(context, who, cards.history(shown, detailed=asked == "status"))
            return
        if asked == "accounts" and self.accounts is not None:
            decision = policy.may_request(self.config.policy, who)
            if not decision.allowed:
                await context.send_activity(decision.reason)
                return
            await self._privately(context, who, await self._accounts_card(who))
            return
        if word.lower() != "broadcast" or rest.lower() in ("help", "?"):
            await context.send_activity(cards.usage(policy.needs_second_person(self.config.policy)))
            return
        decision = policy.may_request(self.config.policy, who)
        if not decision.allowed:
            await context.send_activity(decision.reason)
            return
        if not rest and teams_files.sent(activity):
            await context.send_activity(
                "Write the message with the images: **broadcast** then your message, and the images in the "
                "same message."
            )
            return
        if not rest:
            card = cards.composer(self.broadcasts.audiences, self.config.policy.default_audience)
            await self._privately(context, who, card)
            return
        try:
            attached = await teams_files.attachments(self.connection, activity)
            broadcast = await self.broadcasts.request(
                who, rest, None, ORIGIN, {}, where=_where(activity), attachments=attached
            )
        except (InputError, Refused) as error:
            await context.send_activity(str(error))
            return
        posted = await self._privately(context, who, await self._preview(broadcast))
        if posted is not None:
            await self._keep_card(broadcast.id, *posted)

    async def _privately(
        self, context: TurnContext, who: str, card: cards.Card
    ) -> tuple[ConversationReference, str] | None:
        """Send `card` to `who` in their 1:1 chat with the bot, as Slack shows a draft to its author only.
        Asked in a channel, the channel is told where the answer went. Returns where the card is."""
        activity = context.activity
        if activity.conversation and activity.conversation.conversation_type == "personal":
            answer = await context.send_activity(_attachment(card))
            return (activity.get_conversation_reference(), answer.id) if answer and answer.id else None
        try:
            reference = await self._personal_chat(who, activity)
            message_id = await self.connection.send(reference, _attachment(card))
        except Exception as error:  # no chat could be opened: say so where they asked
            log.warning("could not open a Teams chat with %s: %s", who, type(error).__name__)
            await context.send_activity(
                "I could not open a chat with you to show this. Write to me in a chat (Apps → Broadcast "
                "Relay), then ask again."
            )
            return None
        await context.send_activity("I sent it to you in our chat, where only you can see it.")
        return reference, message_id

    async def _personal_chat(self, who: str, activity: Activity) -> ConversationReference:
        """The person's 1:1 chat with the bot: the one they have used, else a new one (the Bot Connector's
        Create Conversation, which needs their Teams user id and the tenant)."""
        known = await self.directory.personal_chat(who)
        if known is not None:
            return known.reference
        here = activity.get_conversation_reference()
        tenant = activity.conversation.tenant_id if activity.conversation else None
        conversation_id = await self.connection.create_personal(here, activity.from_property, tenant)
        reference = here.model_copy(
            update={
                "conversation": ConversationAccount(
                    id=conversation_id, conversation_type="personal", tenant_id=tenant, is_group=False
                ),
                "activity_id": None,
            }
        )
        name = activity.from_property.name if activity.from_property else ""
        await self.directory.remember(reference, "personal", name or "", user=who)
        return reference

    async def _status(self, who: str, broadcast_id: str) -> cards.Card:
        """`status <id>`: one broadcast's report, for those who may see broadcasts."""
        decision = policy.may_view(self.config.policy, who)
        if not decision.allowed:
            return cards.notice(decision.reason)
        try:
            broadcast = await self.broadcasts.get(broadcast_id)
        except Refused as error:
            return cards.notice(str(error))
        return cards.report(
            broadcast, await self.broadcasts.report(broadcast_id), self.broadcasts.clock(), buttons=False
        )

    async def _about_sent(self, verb: str, words: list[str], who: str, activity: Activity) -> str:
        """`retract <id>`, `move <id> <YYYY-MM-DD> <HH:MM>` (on the writer's clock), `cancel <id>`."""
        where = _where(activity)
        try:
            if verb == "retract":
                return cards.decided((await self.broadcasts.retract(who, words[0], where=where)).broadcast, None)
            if verb == "cancel":
                return cards.decided(await self.broadcasts.unschedule(who, words[0], where=where), None)
            if len(words) != 3:
                return (
                    "Write it as **broadcast move** then the broadcast's id, the day and the time "
                    "(**2026-12-01 09:00**, your own time)."
                )
            zone = activity.local_timezone or "UTC"
            send_at = schedule.instant(words[1], words[2], zone, self.broadcasts.clock())
            await self.broadcasts.reschedule(who, words[0], send_at, where=where)
            return f"Moved **{words[0]}** to {schedule.shown(send_at, zone)}."
        except (Refused, schedule.ScheduleError) as error:
            return str(error)

    async def _keep_card(self, broadcast_id: str, reference: ConversationReference, activity_id: str) -> None:
        """The preview card becomes the live report: remember where it is."""
        await self.broadcasts.remember(
            broadcast_id, "teams_card", {"reference": reference_json(reference), "activity_id": activity_id}
        )

    # ---- card actions ---------------------------------------------------------------------------------

    async def _on_action(self, context: TurnContext, state: TurnState, data: Any) -> AdaptiveCardInvokeResponse:
        activity = context.activity
        who = actor(activity)
        if not self._admitted(activity) or who is None:
            return _message("This bot serves another organisation.")
        self._saw(activity)
        await self._remember_personal(activity)
        values = data if isinstance(data, dict) else {}
        value = activity.value if isinstance(activity.value, dict) else {}
        verb = str((value.get("action") or {}).get("verb", ""))
        try:
            return await self._act(verb, who, values, activity)
        except (InputError, Refused) as error:
            return _message(str(error))

    async def _act(self, verb: str, who: str, values: dict[str, Any], activity: Activity) -> AdaptiveCardInvokeResponse:
        broadcast_id = str(values.get("broadcast_id", ""))
        alts = {int(k[4:]): str(v) for k, v in values.items() if k.startswith("alt_") and k[4:].isdigit()}
        if alts and verb in _WITH_ALT_TEXT:  # the preview's alt text fields, submitted with its every button
            await self.broadcasts.describe_images(who, broadcast_id, alts, where=_where(activity))
        if verb == "alt":
            return _card(await self._preview(await self.broadcasts.get(broadcast_id)))
        if verb == "compose":
            text, audience = str(values.get("text", "")), values.get("audience")
            broadcast = await self.broadcasts.request(who, text, audience, ORIGIN, {}, where=_where(activity))
            if activity.reply_to_id:
                await self._keep_card(broadcast.id, activity.get_conversation_reference(), activity.reply_to_id)
            return _card(await self._preview(broadcast))
        if verb == "audience":
            return _card(
                await self._preview(
                    await self.broadcasts.change(
                        who, broadcast_id, audience=str(values.get("audience")), where=_where(activity)
                    )
                )
            )
        if verb == "edit":
            return _card(
                await self._preview(
                    await self.broadcasts.change(
                        who, broadcast_id, text=str(values.get("text", "")), where=_where(activity)
                    )
                )
            )
        if verb == "cancel":
            return _card(
                cards.notice(
                    cards.decided(await self.broadcasts.cancel(who, broadcast_id, where=_where(activity)), None)
                )
            )
        if verb == "reject":
            return _card(
                cards.notice(
                    cards.decided(await self.broadcasts.reject(who, broadcast_id, where=_where(activity)), "you")
                )
            )
        if verb == "schedule":
            zone = activity.local_timezone or "UTC"  # Teams sends the clicker's own time zone
            date, clock_time = str(values.get("send_date", "")), str(values.get("send_time", ""))
            try:
                send_at = schedule.instant(date, clock_time, zone, self.broadcasts.clock())
            except schedule.ScheduleError as error:
                return _message(str(error))
            approval = await self.broadcasts.approve(who, broadcast_id, where=_where(activity), send_at=send_at)
            notice = f"{cards.decided(approval.broadcast, None)} Scheduled for {schedule.shown(send_at, zone)}."
            return await self._approved(who, approval, notice)
        if verb == "correct":
            approval = await self.broadcasts.correct(
                who, broadcast_id, str(values.get("text", "")), where=_where(activity)
            )
            if not approval.sent:
                return _card(cards.notice(cards.decided(approval.broadcast, None)))
            return _message(
                "Correcting the staff posts in place. Public networks cannot edit posts: to correct them too, "
                "retract the broadcast and post it again."
            )
        if verb == "retract":
            approval = await self.broadcasts.retract(who, broadcast_id, where=_where(activity))
            if approval.sent and approval.broadcast.origin == ORIGIN:
                return _card(
                    cards.report(
                        approval.broadcast, await self.broadcasts.report(broadcast_id), self.broadcasts.clock()
                    )
                )
            return _card(cards.notice(cards.decided(approval.broadcast, None)))
        if verb in ("disconnect", "connect_mastodon", "connect_bluesky") and self.accounts is not None:
            return await self._account_action(verb, who, values)
        if verb == "approve":
            approval = await self.broadcasts.approve(who, broadcast_id, where=_where(activity))
            by = "you" if approval.sent else None
            return await self._approved(who, approval, cards.decided(approval.broadcast, by))
        return _message("This button is not known to the relay any more.")

    async def _accounts_card(self, who: str) -> cards.Card:
        assert self.accounts is not None
        mine = await self.accounts.mine(self.config.policy.ids(who))
        links = await teams_accounts.links_for(self.accounts, who)
        return teams_accounts.card(self.accounts, mine, links, self.broadcasts.clock())

    async def _account_action(self, verb: str, who: str, values: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        """Disconnect, or connect what needs words first; the card becomes the answer."""
        assert self.accounts is not None
        decision = policy.may_request(self.config.policy, who)
        if not decision.allowed:
            return _message(decision.reason)
        try:
            if verb == "disconnect":
                said = await self.accounts.disconnect(self.config.policy.ids(who), str(values.get("account")), who)
                return _card({**await self._accounts_card(who), "body": [teams_accounts.text(said)]})
            if verb == "connect_mastodon":
                link = await self.accounts.begin(who, "mastodon", str(values.get("server", "")))
                return _card(teams_accounts.sign_in_card("Mastodon", link, "Sign in on your server to connect it."))
            await self.accounts.connect_password(
                who, self.bluesky_pds, str(values.get("handle", "")), str(values.get("app_password", ""))
            )
        except SignInFailed as error:
            return _message(str(error))
        return _card(await self._accounts_card(who))

    async def tell(self, person: str, text: str, reconnect: str | None = None) -> None:
        """A private word about the person's own accounts, in their chat with the bot (if they have one)."""
        if not person.startswith("teams:"):
            return
        known = await self.directory.personal_chat(person)
        if known is None:
            return
        words = text + (" Connect it again: write `accounts` to me." if reconnect else "")
        await self.connection.send(known.reference, MessageFactory.text(words))

    async def _approved(self, who: str, approval: Approval, notice: str) -> AdaptiveCardInvokeResponse:
        """What the clicker's card becomes. The author's own draft becomes the live report at once: the
        report refresher redraws that card too, and were the answer anything else, Teams could show the
        refresher's report first and then this answer over it, for good."""
        broadcast = approval.broadcast
        if approval.sent and broadcast.origin == ORIGIN and self.config.policy.same_person(who, broadcast.author):
            return _card(cards.report(broadcast, await self.broadcasts.report(broadcast.id), self.broadcasts.clock()))
        return _card(cards.notice(notice))

    async def _preview(self, broadcast: Broadcast) -> cards.Card:
        attached = await images.load(self.broadcasts.store, broadcast.id)
        return cards.preview(
            broadcast,
            await self.broadcasts.rendered(broadcast),
            self.broadcasts.configs(broadcast),
            self.broadcasts.audiences,
            policy.needs_second_person(self.config.policy) and broadcast.state is BroadcastState.DRAFT,
            [image.alt for image in attached],
        )

    # ---- decisions made on any surface -----------------------------------------------------------------

    async def pending(self, broadcast: Broadcast) -> None:
        """Ask Teams approvers: in the approval channel, and in the chats they have with the bot."""
        card = cards.approval_request(
            broadcast,
            await self._name(broadcast.author),
            await self.broadcasts.rendered(broadcast),
            self.broadcasts.configs(broadcast),
        )
        places = []
        if self.config.policy.teams_approval_channel:
            places.append(await self.directory.place(self.config.policy.teams_approval_channel))
        for approver in sorted(self.config.policy.approvers):
            if approver.startswith("teams:") and not self.config.policy.same_person(approver, broadcast.author):
                places.append(await self.directory.personal_chat(approver))
        posted = []
        for place in places:
            if place is None:
                continue
            try:
                message_id = await self.connection.send(place.reference, _attachment(card))
            except Exception as error:  # one unreachable approver must not keep the others from being asked
                log.warning("could not ask a Teams approver in %s: %s", place.name, type(error).__name__)
                continue
            posted.append({"reference": reference_json(place.reference), "activity_id": message_id})
        await self.broadcasts.remember(broadcast.id, "teams_approvals", posted)

    async def decided(self, broadcast: Broadcast) -> None:
        by = await self._name(broadcast.decided_by) if broadcast.decided_by else None
        for request in broadcast.report_ref.get("teams_approvals", []):
            await self._replace(request, cards.notice(cards.decided(broadcast, by)))
        if broadcast.origin != ORIGIN:
            return
        if broadcast.state in (BroadcastState.APPROVED, BroadcastState.RETRACTED):
            self.refresh(broadcast.id)
        elif broadcast.state is BroadcastState.REJECTED and "teams_card" in broadcast.report_ref:
            await self._replace(broadcast.report_ref["teams_card"], cards.notice(cards.decided(broadcast, by)))

    async def _name(self, person: str) -> str:
        """How to call someone: their [people] name, else the name Teams last showed for them (in any
        activity since start, else in their chat with the bot), else their id. Names are only shown:
        every decision is made on ids."""
        declared = self.config.policy.name(person)
        if declared != person or not person.startswith("teams:"):
            return declared
        if person in self.names:
            return self.names[person]
        chat = await self.directory.personal_chat(person)
        return chat.name if chat is not None and chat.name else person

    def refresh(self, broadcast_id: str) -> None:
        self.reports.refresh(broadcast_id)

    async def _draw_report(self, broadcast_id: str) -> int:
        broadcast = await self.broadcasts.get(broadcast_id)
        where = broadcast.report_ref.get("teams_card")
        sent = broadcast.state in (BroadcastState.APPROVED, BroadcastState.RETRACTED)
        if broadcast.origin != ORIGIN or not sent or not where:
            return 0
        now = await self.broadcasts.report(broadcast_id)
        await self._replace(where, cards.report(broadcast, now, self.broadcasts.clock()))
        return len(now.lines)

    async def _replace(self, where: dict[str, Any], card: cards.Card) -> None:
        reference = ConversationReference.model_validate(where["reference"])
        try:
            await self.connection.update(reference, where["activity_id"], _attachment(card))
        except Exception as error:  # a card that cannot be edited must not break the broadcast
            log.warning("could not update a Teams card: %s", type(error).__name__)

    async def close(self) -> None:
        await self.reports.close()
        await self.connection.close()


def _where(activity: Activity) -> Where:
    return Where(ORIGIN, activity.conversation.id if activity.conversation else "")


async def _looks_like_an_activity(request: web.Request) -> bool:
    """What the SDK needs before it can answer anything: a JSON object with a type, a conversation, a
    sender and a service URL. Anything else is refused here with 400, not left to fail inside it."""
    try:
        body = await request.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    required = (body.get("type"), body.get("serviceUrl"), (body.get("conversation") or {}).get("id"))
    return all(isinstance(value, str) and value for value in required) and isinstance(body.get("from"), dict)


def _in(reference: ConversationReference, conversation_id: str) -> ConversationReference:
    """The same team's reference, pointed at another of its channels."""
    conversation = ConversationAccount(
        id=conversation_id,
        is_group=True,
        conversation_type="channel",
        tenant_id=reference.conversation.tenant_id if reference.conversation else None,
    )
    return reference.model_copy(update={"conversation": conversation})


def _attachment(card: cards.Card) -> Activity:
    message: Activity = MessageFactory.attachment(CardFactory.adaptive_card(card))
    return message


def _card(card: cards.Card) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=ContentTypes.adaptive_card, value=card)


def _message(text: str) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=ContentTypes.message, value=text)

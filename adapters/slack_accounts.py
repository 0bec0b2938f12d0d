"""`/broadcast accounts` in Slack: a leader's own connected accounts, a Disconnect for each, a Connect for each
network this relay offers (relay.accounts), and the two modals that need words first (a Mastodon server; a
Bluesky handle and app password).

The Connect buttons of browser sign-ins are links made for the person who asked (a state bound to them, and to the
first browser that opens it); Slack still sends the click to the app, which only acknowledges it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from relay.accounts import Account, Accounts, SignInFailed
from relay.config import Policy

log = logging.getLogger(__name__)

Block = dict[str, Any]
Respond = Callable[..., Awaitable[None]]

_STATE = re.compile(r"state=[\w-]+")


class _NoSignInStates(logging.Filter):
    """Bolt logs every answer's body, and slack_sdk every request's, at DEBUG: the accounts message and a
    reminder carry sign-in links, each a key for 10 minutes to connect an account as the person it was made for.
    Their state is taken out of the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "state=" in message:
            record.msg, record.args = _STATE.sub("state=(redacted)", message), ()
        return True


for _logger in ("slack_bolt.AsyncApp", "slack_sdk.web.async_base_client"):
    logging.getLogger(_logger).addFilter(_NoSignInStates())

# Block Kit (docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element): an input's max_length
# is up to 3000; a Bluesky handle is a domain name (at most 253 characters), an app password 19 ("xxxx-xxxx-…").
HANDLE_MAX = 253
PASSWORD_MAX = 64
SERVER_MAX = 253


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def account_line(account: Account, label: str, now: float) -> str:
    problem = account.needs_reconnecting(now)
    warning = f"\n:warning: Needs connecting again: {problem}." if problem else ""
    return f"*{label}* {account.handle}{warning}"


def accounts_message(accounts: Accounts, mine: Iterable[Account], links: dict[str, str], now: float) -> dict[str, Any]:
    """The person's accounts and the networks they can connect (`links`: network → sign-in link)."""
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Your own accounts*"}}]
    owned = list(mine)
    for account in owned:
        blocks.append(
            {
                "type": "section",
                "block_id": f"account:{account.id}",
                "text": {"type": "mrkdwn", "text": account_line(account, accounts.label(account.network), now)},
                "accessory": {
                    "type": "button",
                    "action_id": "disconnect",
                    "text": _plain("Disconnect"),
                    "value": account.id,
                    "style": "danger",
                },
            }
        )
    if not owned:
        blocks.append(_context("None connected yet. Connected accounts can be chosen in a broadcast's audience."))
    off = accounts.off()
    if off:
        blocks.append(_context(off))
        return {"text": "Your own accounts", "blocks": blocks}
    buttons: list[Block] = []
    for network, label in accounts.offered():
        button: Block = {"type": "button", "text": _plain(f"Connect {label}"), "value": network}
        if network in links:
            button |= {"action_id": f"connect_link_{network}", "url": links[network]}
        else:
            button["action_id"] = f"connect_{network}"
        buttons.append(button)
    if buttons:
        blocks.append({"type": "actions", "block_id": "connect", "elements": buttons})
        blocks.append(_context("A sign-in link works once, for 10 minutes, in the browser that opens it first."))
    return {"text": "Your own accounts", "blocks": blocks}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def mastodon_modal(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "connect_mastodon",
        "private_metadata": json.dumps(metadata),
        "title": _plain("Connect Mastodon"),
        "submit": _plain("Continue"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "server",
                "label": _plain("Your Mastodon server"),
                "hint": _plain("The address your account lives on, like mastodon.social"),
                "element": {"type": "plain_text_input", "action_id": "server", "max_length": SERVER_MAX},
            }
        ],
    }


def mastodon_link_modal(server: str, link: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "connect_mastodon_link",
        "title": _plain("Connect Mastodon"),
        "close": _plain("Done"),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Sign in on {server} to connect your account."},
                "accessory": {
                    "type": "button",
                    "action_id": "connect_link_mastodon",
                    "text": _plain("Sign in"),
                    "url": link,
                },
            }
        ],
    }


def bluesky_modal(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "connect_bluesky",
        "private_metadata": json.dumps(metadata),
        "title": _plain("Connect Bluesky"),
        "submit": _plain("Connect"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "handle",
                "label": _plain("Your handle"),
                "element": {"type": "plain_text_input", "action_id": "handle", "max_length": HANDLE_MAX},
            },
            {
                "type": "input",
                "block_id": "app_password",
                "label": _plain("An app password"),
                "hint": _plain(
                    "Make one in Bluesky: Settings → Privacy and security → App passwords. Never your own password."
                ),
                "element": {"type": "plain_text_input", "action_id": "app_password", "max_length": PASSWORD_MAX},
            },
        ],
    }


def _value(view: dict[str, Any], block: str) -> str:
    return str(view["state"]["values"][block][block].get("value") or "")


class SlackAccounts:
    """The accounts command's handlers, registered on the Slack surface's Bolt app."""

    def __init__(
        self, accounts: Accounts, policy: Policy, respond: Respond, clock: Callable[[], float], pds: str
    ) -> None:
        self.accounts = accounts
        self.policy = policy
        self.respond = respond  # the surface's answer to a response_url (ephemeral, or by DM)
        self.clock = clock
        self.pds = pds  # where Bluesky handles sign in (BLUESKY_PDS_URL, else bsky.social)

    def register(self, app: AsyncApp, after_ack: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        app.action("disconnect")(after_ack(self._disconnect))
        app.action(re.compile(r"^connect_link_\w+$"))(after_ack(self._link_opened))
        app.action("connect_mastodon")(after_ack(self._open_mastodon))
        app.action("connect_bluesky")(after_ack(self._open_bluesky))
        app.view("connect_mastodon")(after_ack(self._mastodon_submitted))
        app.view("connect_bluesky")(after_ack(self._bluesky_submitted))

    async def message(self, who: str) -> dict[str, Any]:
        """The accounts message for `who`: a fresh sign-in link per browser network."""
        links = {}
        if self.accounts.off() is None:
            for network, _ in self.accounts.offered():
                if self.accounts.sign_ins.browser(network) and not self.accounts.asks_for_server(network):
                    links[network] = await self.accounts.begin(who, network)
        mine = await self.accounts.mine(self.policy.ids(who))
        return accounts_message(self.accounts, mine, links, self.clock())

    async def reminder(self, who: str, text: str, network: str) -> dict[str, Any]:
        """A DM saying `text`, with a button to connect the account of `network` again."""
        button: Block = {"type": "button", "text": _plain("Connect again"), "value": network}
        if self.accounts.off() is not None or network not in dict(self.accounts.offered()):
            return {"text": f"{text} Connect it again with `/broadcast accounts`."}
        if self.accounts.sign_ins.browser(network) and not self.accounts.asks_for_server(network):
            button |= {"action_id": f"connect_link_{network}", "url": await self.accounts.begin(who, network)}
        else:
            button["action_id"] = f"connect_{network}"
        section = {"type": "section", "text": {"type": "mrkdwn", "text": text}, "accessory": button}
        return {"text": text, "blocks": [section]}

    async def _link_opened(self, ack: Callable[..., Awaitable[None]]) -> None:
        await ack()  # the browser opens the link; there is nothing to do here

    async def _disconnect(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        who = f"slack:{body['user']['id']}"
        answer = await self.accounts.disconnect(self.policy.ids(who), body["actions"][0]["value"], who)
        await self.respond(body.get("response_url"), body["user"]["id"], replace=True, **await self.message(who))
        await self.respond(body.get("response_url"), body["user"]["id"], replace=False, text=answer)

    async def _open_mastodon(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=mastodon_modal({}))

    async def _open_bluesky(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=bluesky_modal({}))

    async def _mastodon_submitted(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        server = _value(view, "server")
        try:
            link = await self.accounts.begin(f"slack:{body['user']['id']}", "mastodon", server)
        except SignInFailed as error:
            await ack(response_action="errors", errors={"server": str(error)})
            return
        await ack(response_action="update", view=mastodon_link_modal(server.strip(), link))

    async def _bluesky_submitted(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        try:
            await self.accounts.connect_password(
                f"slack:{body['user']['id']}", self.pds, _value(view, "handle"), _value(view, "app_password")
            )
        except SignInFailed as error:
            await ack(response_action="errors", errors={"app_password": str(error)})
            return
        await ack()

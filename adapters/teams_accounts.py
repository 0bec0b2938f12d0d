"""`accounts` to the Teams bot: a leader's own connected accounts as an Adaptive Card, a Disconnect for each, a
sign-in link for each browser network, and inputs for what needs words first (a Mastodon server; a Bluesky
handle and app password, in a password field). The same core as Slack's (relay.accounts)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relay.accounts import Account, Accounts

Card = dict[str, Any]

# Adaptive Cards 1.5 (adaptivecards.io, Input.Text): `style: "Password"` masks what is typed; Teams renders 1.5.
VERSION = "1.5"


def text(text: str, **style: Any) -> Card:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def card(accounts: Accounts, mine: Iterable[Account], links: dict[str, str], now: float) -> Card:
    """The person's accounts and the networks they can connect (`links`: network → sign-in link)."""
    body: list[Card] = [text("**Your own accounts**")]
    owned = list(mine)
    for account in owned:
        problem = account.needs_reconnecting(now)
        line = f"**{accounts.label(account.network)}** {account.handle}"
        body.append(
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [text(line + (f" ⚠️ Needs connecting again: {problem}." if problem else ""))],
                    },
                    {
                        "type": "Column",
                        "width": "auto",
                        "items": [
                            {
                                "type": "ActionSet",
                                "actions": [
                                    {
                                        "type": "Action.Execute",
                                        "title": "Disconnect",
                                        "verb": "disconnect",
                                        "data": {"account": account.id},
                                    }
                                ],
                            }
                        ],
                    },
                ],
            }
        )
    if not owned:
        body.append(
            text("None connected yet. Connected accounts can be chosen in a broadcast's audience.", isSubtle=True)
        )
    off = accounts.off()
    if off:
        body.append(text(off, isSubtle=True))
        return {"type": "AdaptiveCard", "version": VERSION, "body": body}
    offered = dict(accounts.offered())
    actions: list[Card] = [
        {"type": "Action.OpenUrl", "title": f"Connect {offered[network]}", "url": link}
        for network, link in links.items()
    ]
    if "mastodon" in offered:
        body.append(
            {"type": "Input.Text", "id": "server", "label": "Your Mastodon server", "placeholder": "mastodon.social"}
        )
        actions.append({"type": "Action.Execute", "title": "Connect Mastodon", "verb": "connect_mastodon", "data": {}})
    if "bluesky" in offered:
        body.append({"type": "Input.Text", "id": "handle", "label": "Your Bluesky handle"})
        body.append(
            {"type": "Input.Text", "id": "app_password", "label": "A Bluesky app password", "style": "Password"}
        )
        actions.append({"type": "Action.Execute", "title": "Connect Bluesky", "verb": "connect_bluesky", "data": {}})
    body.append(text("A sign-in link works once, for 10 minutes, in the browser that opens it first.", isSubtle=True))
    return {"type": "AdaptiveCard", "version": VERSION, "body": body, "actions": actions}


def sign_in_card(label: str, link: str, words: str) -> Card:
    return {
        "type": "AdaptiveCard",
        "version": VERSION,
        "body": [text(words)],
        "actions": [{"type": "Action.OpenUrl", "title": f"Sign in to {label}", "url": link}],
    }


async def links_for(accounts: Accounts, who: str) -> dict[str, str]:
    """A fresh sign-in link for each browser network that needs no server named."""
    if accounts.off() is not None:
        return {}
    return {
        network: await accounts.begin(who, network)
        for network, _ in accounts.offered()
        if accounts.sign_ins.browser(network) and not accounts.asks_for_server(network)
    }

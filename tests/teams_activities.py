"""Activities as Teams sends them to a bot's /api/messages (Bot Framework Activity schema, Teams flavour)."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT = "28:00000000-0000-0000-0000-00000000b07"
TEAM = "19:team-general@thread.tacv2"
ANNOUNCEMENTS = "19:announcements@thread.tacv2"
APPROVALS = "19:approvals@thread.tacv2"
CEO = "00000000-0000-0000-0000-0000000000c0"
CFO = "00000000-0000-0000-0000-0000000000f0"
STRANGER = "00000000-0000-0000-0000-0000000000aa"
_ids = itertools.count(1)


def _base(kind: str, service_url: str, user: str, conversation: dict[str, Any], tenant: str) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"1699{next(_ids):09d}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "timestamp": "2026-11-28T09:00:00.000Z",
        "from": {"id": f"29:{user}", "name": f"User {user[-2:]}", "aadObjectId": user},
        "recipient": {"id": BOT, "name": "Broadcast Relay"},
        "conversation": {**conversation, "tenantId": tenant},
        "channelData": {"tenant": {"id": tenant}},
    }


def personal(user: str) -> dict[str, Any]:
    return {"id": f"a:personal-{user}", "conversationType": "personal"}


def message(
    service_url: str, user: str, text: str, tenant: str = TENANT, attachments: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A message in the person's 1:1 chat with the bot; with pasted images or attached files, Teams sends
    the text as HTML too, in a `text/html` attachment that names each pasted image again."""
    activity = _base("message", service_url, user, personal(user), tenant)
    activity["text"] = text
    if attachments:
        pasted = "".join(f'<img src="{a["contentUrl"]}">' for a in attachments if "contentUrl" in a)
        html = {"contentType": "text/html", "content": f"<p>{text}</p>{pasted}"}
        activity["attachments"] = [*attachments, html]
    return activity


def action(
    service_url: str,
    user: str,
    verb: str,
    data: dict[str, Any],
    card_id: str,
    conversation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A click on an Action.Execute button: an `adaptiveCard/action` invoke."""
    activity = _base("invoke", service_url, user, conversation or personal(user), TENANT)
    activity.update(
        name="adaptiveCard/action",
        replyToId=card_id,
        value={"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"},
    )
    return activity


def installed_in_team(
    service_url: str, installer: str = CEO, team: str = TEAM, name: str = "Company"
) -> dict[str, Any]:
    """Teams tells the bot it was added to a team."""
    conversation = {"id": team, "conversationType": "channel", "isGroup": True}
    activity = _base("conversationUpdate", service_url, installer, conversation, TENANT)
    activity["membersAdded"] = [{"id": BOT}]
    activity["channelData"] = {
        "eventType": "teamMemberAdded",
        "tenant": {"id": TENANT},
        "team": {"id": team, "name": name},
    }
    return activity


def channel_created(service_url: str, channel: str, name: str, team: str = TEAM) -> dict[str, Any]:
    conversation = {"id": team, "conversationType": "channel", "isGroup": True}
    activity = _base("conversationUpdate", service_url, CEO, conversation, TENANT)
    activity["channelData"] = {
        "eventType": "channelCreated",
        "tenant": {"id": TENANT},
        "team": {"id": team, "name": "Company"},
        "channel": {"id": channel, "name": name},
    }
    return activity


class TeamsClient:
    """Posts activities to the bot as Teams does."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = f"{url}/api/messages"
        self.http = http

    async def send(self, activity: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.url, json=activity, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body

"""Requests as Slack sends them: form-encoded bodies, signed with the app's signing secret.

Slack signs `v0:{timestamp}:{raw body}` with HMAC-SHA256 and sends `X-Slack-Signature: v0=<hex>` with
`X-Slack-Request-Timestamp` (docs.slack.dev, "Verifying requests from Slack").
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

TEAM = "T0TEAM"
_triggers = itertools.count(1)


def signed_headers(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(user: str, text: str, response_url: str, channel: str = "C0CMD") -> str:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM,
            "team_domain": "test",
            "channel_id": channel,
            "channel_name": "leadership",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/broadcast",
            "text": text,
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"trigger.{next(_triggers)}",
        }
    )


def action_body(
    user: str,
    action_id: str,
    broadcast_id: str,
    response_url: str,
    block_id: str | None = None,
    selected: str | None = None,
    state: dict[str, Any] | None = None,
) -> str:
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or f"broadcast:{broadcast_id}",
        "action_ts": f"{time.time():.6f}",
    }
    if selected is None:
        action.update(type="button", value=broadcast_id, text={"type": "plain_text", "text": action_id})
    else:
        action.update(
            type="static_select", selected_option={"text": {"type": "plain_text", "text": selected}, "value": selected}
        )
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "C0CMD", "is_ephemeral": True},
        "trigger_id": f"trigger.{next(_triggers)}",
        "team": {"id": TEAM, "domain": "test"},
        "channel": {"id": "C0CMD", "name": "leadership"},
        "response_url": response_url,
        "actions": [action],
    }
    if state is not None:
        payload["state"] = {"values": state}
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    user: str,
    callback_id: str,
    private_metadata: str,
    message: str = "",
    audience: str = "",
    inputs: dict[str, str] | None = None,
    more: dict[str, Any] | None = None,
) -> str:
    """A modal submitted: the composer's message and audience, or other text `inputs` (block id → value, each
    block's one input named as its block); `more`: other inputs' state, by block id (the composer's images and
    alt text)."""
    values: dict[str, Any] = {
        "message": {"message": {"type": "plain_text_input", "value": message}},
        "audience": {
            "audience": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": audience}, "value": audience},
            }
        },
    }
    if inputs is not None:
        values = {block: {block: {"type": "plain_text_input", "value": value}} for block, value in inputs.items()}
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
        "trigger_id": f"trigger.{next(_triggers)}",
        "view": {
            "id": "V0VIEW",
            "team_id": TEAM,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": {**values, **(more or {})}},
        },
    }
    return urlencode({"payload": json.dumps(payload)})

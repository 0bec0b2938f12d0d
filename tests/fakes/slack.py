"""Loopback Slack Web API (plus `response_url`s) that records and misbehaves on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from . import block_kit
from .faults import Fault
from .server import LoopbackServer

Payload = dict[str, Any]

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0TEAM"
WORKSPACE_URL = "https://test.slack.com/"

# Form-encoded callers send these as JSON strings; JSON callers send objects.
_JSON_FIELDS = ("blocks", "attachments", "metadata", "view", "files")
_TS_STEP_MICROS = 100
MANIFEST = Path(__file__).resolve().parents[2] / "manifest.json"

# Which bot scope each Web API method needs, from Slack's method reference (docs.slack.dev/reference/methods/
# <method>, "Required scopes", bot tokens). Any one of a method's scopes lets it through; for the
# conversation methods the conversation's kind picks the one (`_needed`). An empty tuple: no scope.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.getPermalink": (),
    "conversations.history": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.replies": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.open": ("channels:manage", "groups:write", "im:write", "mpim:write"),
    "views.open": (),
    "views.update": (),
    "views.publish": (),
    "users.info": ("users:read",),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "files.info": ("files:read",),
}
# An upload URL from files.getUploadURLExternal is good for a limited time; one never completed is dropped.
UPLOAD_URL_TTL = 3600.0


@dataclass
class SlackFile:
    """A file: announced (getUploadURLExternal), then its bytes, then completed; a block may show it after."""

    id: str
    name: str
    length: int
    alt_txt: str | None
    expires_at: float  # monotonic: the upload URL's end
    data: bytes | None = field(default=None, repr=False)
    title: str | None = None
    completed: bool = False
    mimetype: str = "application/octet-stream"
    user: str = BOT_USER_ID


_HISTORY_BY_KIND = {"C": "channels:history", "G": "groups:history", "D": "im:history"}


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes an app installed from `manifest.json` is granted."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


def _needed(method: str, params: Mapping[str, Any]) -> str | None:
    """The one scope this call needs, or None."""
    scopes = METHOD_SCOPES.get(method, ())
    if method in ("conversations.history", "conversations.replies"):
        return _HISTORY_BY_KIND.get(str(params.get("channel", ""))[:1], "channels:history")
    if method == "conversations.open":
        users = params.get("users") or ""
        many = len(users) > 1 if isinstance(users, list) else "," in str(users)
        return "mpim:write" if many else "im:write"
    return scopes[0] if scopes else None


@dataclass
class Call:
    """One request as the fake received it; `fault` is what was injected, if anything."""

    method: str
    params: dict[str, Any]
    headers: Mapping[str, str] = field(repr=False)
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic, repr=False)  # when it arrived


def _error(code: str, **details: Any) -> Payload:
    return {"ok": False, "error": code, **details}


def _invalid(code: str, problems: list[str]) -> Payload:
    """Slack's answer to blocks or a view it will not take: the code, and each problem with its JSON pointer."""
    return _error(code, errors=problems, response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})


def _flag(value: Any) -> bool:
    """Slack booleans arrive as JSON true or as "1"/"true" in forms and queries."""
    return value in (True, 1, "1", "true")


def _channel_id(channel: str) -> str:
    """Posting to a user id lands in the DM with that user."""
    return "D" + channel if channel[:1] in ("U", "W") else channel


def _is_hidden_reply(message: Payload) -> bool:
    """Thread replies are absent from conversations.history unless broadcast."""
    return message.get("thread_ts", message["ts"]) != message["ts"] and not message.get("reply_broadcast")


def _visible(message: Payload, params: Mapping[str, Any]) -> Payload:
    """Slack only returns metadata to readers that ask for it."""
    if _flag(params.get("include_all_metadata")):
        return dict(message)
    return {key: value for key, value in message.items() if key != "metadata"}


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Merge query and JSON or form body, decoding JSON-string fields like `blocks`."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    elif request.body_exists:
        form = await request.post()
        params.update((key, value) for key, value in form.items() if isinstance(value, str))
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


class FakeSlack(LoopbackServer[Call]):
    """Slack Web API on loopback, for `AsyncWebClient(base_url=slack.api_url)`."""

    def __init__(
        self,
        token: str = "xoxb-test",
        app_token: str = "xapp-test",
        scopes: frozenset[str] | None = None,
        enterprise_id: str | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.app_token = app_token
        self.scopes = manifest_scopes() if scopes is None else scopes  # what the installed app was granted
        self.enterprise_id = enterprise_id  # the Enterprise Grid organisation the workspace belongs to
        # Every call Slack refused for its content or a missing scope, as (method, error, problems): a test
        # that expects none finds here what a real workspace would have refused.
        self.refusals: list[tuple[str, str, list[str]]] = []
        self._socket: web.WebSocketResponse | None = None
        self._socket_open = asyncio.Event()
        self._acks: dict[str, asyncio.Future[Payload]] = {}
        self.channel_errors: dict[str, str] = {}
        self.users: dict[str, Payload] = {}
        self.views: dict[str, Payload] = {}
        self.responses: dict[str, list[Payload]] = {}
        self._messages: dict[str, list[Payload]] = {}
        self._last_ts_micros = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Payload]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.open": self._open_conversation,
            "views.open": self._open_view,
            "views.update": self._update_view,
            "views.publish": self._publish_view,
            "users.info": self._user_info,
        }
        self.files: dict[str, SlackFile] = {}
        self._methods.update(
            {
                "files.getUploadURLExternal": self._upload_url,
                "files.completeUploadExternal": self._complete_upload,
                "files.info": self._file_info,
            }
        )
        self.app.router.add_post("/upload/{id}", self._upload)
        self.app.router.add_get("/files-pri/{id}", self._download)
        self.app.router.add_get("/api/{method}", self._api)
        self.app.router.add_post("/api/{method}", self._api)
        self.app.router.add_post("/response/{key}", self._response_url)
        self.app.router.add_get("/socket", self._socket_mode)

    @property
    def api_url(self) -> str:
        """Value for slack_sdk's `base_url` (trailing slash included)."""
        return f"{self.origin}/api/"

    def response_url(self, key: str) -> str:
        """A `response_url` whose posts land in `self.responses[key]`."""
        return f"{self.origin}/response/{key}"

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one Slack method (or "response_url")."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str) -> list[Payload]:
        """Stored messages of a channel, thread replies included, oldest first."""
        return list(self._messages.get(channel, []))

    def add_message(self, channel: str, text: str = "", **fields: Any) -> Payload:
        """Store a bot message as chat.postMessage would; tests seed history with it."""
        message: Payload = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": text,
            "ts": self._next_ts(),
            **{key: value for key, value in fields.items() if value is not None},
        }
        self._messages.setdefault(channel, []).append(message)
        return message

    @staticmethod
    def rate_limited(retry_after: int = 1) -> Fault:
        """A 429 shaped like Slack's: `Retry-After` header and `ratelimited` error."""
        return Fault.status(429, _error("ratelimited"), {"Retry-After": str(retry_after)})

    def rate_limited_for(self, seconds: float) -> Fault:
        return self.rate_limited(math.ceil(seconds))  # Slack's Retry-After is whole seconds

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await _read_params(request)
        fault = self._fault_for(method, params)

        async def apply() -> web.StreamResponse:
            return web.json_response(self._answer(method, params, request.headers))

        return await self._serve(request, Call(method, params, request.headers, fault), fault, apply)

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        params = {"key": key, **(body if isinstance(body, dict) else {})}
        fault = self.faults.take("response_url", params)

        async def apply() -> web.StreamResponse:
            if not isinstance(body, dict):
                return web.Response(status=400, text="invalid_payload")
            problems = block_kit.message_problems(body.get("blocks"))
            if problems:  # a response_url answers a refusal in plain text, with a 400
                self.refusals.append(("response_url", "invalid_blocks", problems))
                return web.Response(status=400, text="invalid_blocks")
            self.responses.setdefault(key, []).append(body)
            return web.Response(text="ok")

        return await self._serve(request, Call("response_url", params, request.headers, fault), fault, apply)

    def _answer(self, method: str, params: dict[str, Any], headers: Mapping[str, str]) -> Payload:
        if method == "apps.connections.open":  # Socket Mode: the only method taking the app-level token
            if headers.get("Authorization") != f"Bearer {self.app_token}":
                return _error("invalid_auth")
            return {"ok": True, "url": self.origin.replace("http://", "ws://") + "/socket"}
        handler = self._methods.get(method)
        if handler is None:
            return _error("unknown_method")
        if headers.get("Authorization") != f"Bearer {self.token}" and params.get("token") != self.token:
            return _error("invalid_auth")
        needed = _needed(method, params)
        if needed is not None and needed not in self.scopes:
            self.refusals.append((method, "missing_scope", [needed]))
            return _error("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        answer = handler(params)
        if not answer["ok"] and "errors" in answer:
            self.refusals.append((method, answer["error"], answer["errors"]))
        return answer

    def check_ack(self, body: Payload) -> None:
        """An acknowledgement carrying a message (a slash command's answer) is shown by Slack only if it would
        take the blocks; the harness hands it here, so a refused one is recorded like any other. Answers
        through an acknowledgement or a response_url are not held to the 12,000 characters of block text:
        bolt-js issue 2867 found that limit on chat.postMessage only."""
        problems = block_kit.message_problems(body.get("blocks"))
        if problems:
            self.refusals.append(("ack", "invalid_blocks", problems))

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        await super().close()

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode's websocket: say hello, then collect the app's acknowledgements by envelope id."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0APP"}})
        self._socket_open.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                ack = json.loads(message.data)
                future = self._acks.pop(ack.get("envelope_id", ""), None)
                if future is not None and not future.done():
                    future.set_result(ack)
        return socket

    async def socket_request(self, kind: str, payload: Payload, timeout: float = 10.0) -> Payload:
        """Deliver one envelope (`slash_commands`, `interactive`) over Socket Mode; return the app's ack."""
        async with asyncio.timeout(timeout):
            await self._socket_open.wait()
            assert self._socket is not None
            envelope_id = f"env-{len(self._acks)}-{time.monotonic_ns()}"
            future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
            self._acks[envelope_id] = future
            await self._socket.send_json(
                {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
            )
            return await future

    def _next_ts(self) -> str:
        """Like Slack's: the current epoch time in microseconds, unique and increasing."""
        self._last_ts_micros = max(self._last_ts_micros + _TS_STEP_MICROS, int(time.time() * 1_000_000))
        seconds, micros = divmod(self._last_ts_micros, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _find(self, channel: str, ts: str) -> Payload | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _auth_test(self, params: dict[str, Any]) -> Payload:
        return {
            "ok": True,
            "url": WORKSPACE_URL,
            "team": "Test",
            "user": "relaybot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
        }

    @staticmethod
    def _blocks_refused(params: Mapping[str, Any]) -> Payload | None:
        blocks = params.get("blocks")
        problems = block_kit.message_problems(blocks)
        if problems:
            return _invalid("invalid_blocks", problems)
        if block_kit.too_long(blocks):
            return _invalid("msg_blocks_too_long", [f"{block_kit.block_text(blocks)} characters of block text"])
        return None

    def _unknown_files(self, params: Mapping[str, Any]) -> Payload | None:
        """An image block may show only a file the app uploaded and completed."""
        for block in params.get("blocks") or []:
            wanted = (block.get("slack_file") or {}).get("id") if isinstance(block, dict) else None
            if wanted is not None:
                shown = self.files.get(str(wanted))
                if shown is None or not shown.completed:
                    return _invalid("invalid_blocks", [f"invalid slack file {wanted} [json-pointer:/blocks]"])
        return None

    def add_file(self, data: bytes, name: str, mimetype: str, user: str = "U0LEAD") -> SlackFile:
        """A file a person uploaded in Slack (the composer's file_input): completed, theirs."""
        number = len(self.files) + 1
        added = SlackFile(f"F0UP{number:06d}", name, len(data), None, math.inf, data, name, True, mimetype, user)
        self.files[added.id] = added
        return added

    def _upload_url(self, params: dict[str, Any]) -> Payload:
        name, length = str(params.get("filename") or ""), int(params.get("length") or 0)
        if not name or length <= 0:
            return _error("invalid_arguments")
        alt = params.get("alt_txt")
        if alt is not None and len(str(alt)) > 1000:  # files.getUploadURLExternal: alt_txt
            return _error("invalid_arguments")
        number = len(self.files) + 1
        announced = SlackFile(f"F0BOT{number:05d}", name, length, alt, time.monotonic() + UPLOAD_URL_TTL)
        self.files[announced.id] = announced
        return {"ok": True, "upload_url": f"{self.origin}/upload/{announced.id}", "file_id": announced.id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: the bytes, their length as announced, before the URL expires."""
        data = await request.read()
        params = {"file_id": request.match_info["id"]}
        fault = self._fault_for("upload", params)

        async def apply() -> web.StreamResponse:
            announced = self.files.get(request.match_info["id"])
            if announced is None or announced.expires_at <= time.monotonic() or announced.completed:
                return web.Response(status=404, text="upload URL expired or unknown")
            if len(data) != announced.length:
                return web.Response(status=400, text=f"expected {announced.length} bytes, got {len(data)}")
            announced.data = data
            return web.Response(text=f"OK - {len(data)}")

        return await self._serve(request, Call("upload", params, request.headers, fault), fault, apply)

    def _complete_upload(self, params: dict[str, Any]) -> Payload:
        listed = params.get("files")
        if not isinstance(listed, list) or not listed:
            return _error("invalid_arguments")
        done = []
        for item in listed:
            announced = self.files.get(str(item.get("id")))
            if announced is None or announced.data is None or announced.expires_at <= time.monotonic():
                return _error("file_not_found")
            announced.completed, announced.title = True, str(item.get("title") or announced.name)
            done.append({"id": announced.id, "title": announced.title})
        return {"ok": True, "files": done}

    def _file_info(self, params: dict[str, Any]) -> Payload:
        found = self.files.get(str(params.get("file")))
        if found is None or not found.completed:
            return _error("file_not_found")
        url = f"{self.origin}/files-pri/{found.id}"
        described = {"id": found.id, "name": found.name, "title": found.title, "mimetype": found.mimetype}
        return {
            "ok": True,
            "file": {**described, "size": found.length, "user": found.user, "url_private": url},
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """`url_private`: the bytes, only with the bot token (Slack answers a login page otherwise)."""
        found = self.files.get(request.match_info["id"])
        if request.headers.get("Authorization") != f"Bearer {self.token}" or found is None or found.data is None:
            return web.Response(status=302, headers={"Location": f"{self.origin}/signin"})
        if "files:read" not in self.scopes:
            return web.Response(status=403, text="missing files:read")
        return web.Response(body=found.data, content_type=found.mimetype)

    def _post_message(self, params: dict[str, Any]) -> Payload:
        requested = str(params.get("channel", ""))
        if not requested:
            return _error("channel_not_found")
        if requested in self.channel_errors:
            return _error(self.channel_errors[requested])
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            return _error("no_text")
        if refused := self._blocks_refused(params) or self._unknown_files(params):
            return refused
        channel = _channel_id(requested)
        message = self.add_message(
            channel,
            str(params.get("text", "")),
            blocks=params.get("blocks"),
            attachments=params.get("attachments"),
            metadata=params.get("metadata"),
            thread_ts=params.get("thread_ts"),
            reply_broadcast=True if _flag(params.get("reply_broadcast")) else None,
        )
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _update(self, params: dict[str, Any]) -> Payload:
        channel = _channel_id(str(params.get("channel", "")))
        message = self._find(channel, str(params.get("ts", "")))
        if message is None:
            return _error("message_not_found")
        if refused := self._blocks_refused(params) or self._unknown_files(params):
            return refused
        message.update({key: params[key] for key in ("text", "blocks", "attachments", "metadata") if key in params})
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": message,
        }

    def _delete(self, params: dict[str, Any]) -> Payload:
        channel = _channel_id(str(params.get("channel", "")))
        message = self._find(channel, str(params.get("ts", "")))
        if message is None:
            return _error("message_not_found")
        self._messages[channel].remove(message)
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _post_ephemeral(self, params: dict[str, Any]) -> Payload:
        if not params.get("user"):
            return _error("user_not_in_channel")
        if refused := self._blocks_refused(params):
            return refused
        return {"ok": True, "message_ts": self._next_ts()}

    def _get_permalink(self, params: dict[str, Any]) -> Payload:
        channel = str(params.get("channel", ""))
        ts = str(params.get("message_ts", ""))
        if self._find(channel, ts) is None:
            return _error("message_not_found")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"{WORKSPACE_URL}archives/{channel}/p{ts.replace('.', '')}",
        }

    def _history(self, params: dict[str, Any]) -> Payload:
        inclusive = _flag(params.get("inclusive"))
        oldest = Decimal(str(params.get("oldest") or 0))
        latest = Decimal(str(params["latest"])) if params.get("latest") else None

        def in_window(ts: Decimal) -> bool:
            after = ts >= oldest if inclusive else ts > oldest
            before = latest is None or (ts <= latest if inclusive else ts < latest)
            return after and before

        channel = str(params.get("channel", ""))
        found = [
            _visible(m, params)
            for m in reversed(self._messages.get(channel, []))
            if not _is_hidden_reply(m) and in_window(Decimal(m["ts"]))
        ]
        return {
            "ok": True,
            "messages": found[: int(params.get("limit") or 100)],
            "has_more": False,
        }

    def _replies(self, params: dict[str, Any]) -> Payload:
        channel = str(params.get("channel", ""))
        ts = str(params.get("ts", ""))
        if self._find(channel, ts) is None:
            return _error("thread_not_found")
        thread = [_visible(m, params) for m in self._messages[channel] if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"ok": True, "messages": thread, "has_more": False}

    def _open_conversation(self, params: dict[str, Any]) -> Payload:
        users = params.get("users") or ""
        first = users[0] if isinstance(users, list) else str(users).split(",")[0]
        channel = str(params.get("channel") or _channel_id(first))
        return {"ok": True, "channel": {"id": channel}} if channel else _error("users_list_not_supplied")

    def _store_view(self, view: Any, view_id: str) -> Payload:
        problems = block_kit.view_problems(view)
        if problems:
            return _invalid("invalid_arguments", problems)
        assert isinstance(view, dict)
        stored = {**view, "id": view_id}
        self.views[view_id] = stored
        return {"ok": True, "view": stored}

    def _open_view(self, params: dict[str, Any]) -> Payload:
        if not params.get("trigger_id"):
            return _error("invalid_trigger_id")
        return self._store_view(params.get("view"), f"V{len(self.views) + 1:08d}")

    def _update_view(self, params: dict[str, Any]) -> Payload:
        view_id = params.get("view_id")
        if external_id := params.get("external_id"):
            view_id = next(
                (vid for vid, v in self.views.items() if v.get("external_id") == external_id),
                None,
            )
        if view_id not in self.views:
            return _error("not_found")
        return self._store_view(params.get("view"), str(view_id))

    def _publish_view(self, params: dict[str, Any]) -> Payload:
        if not params.get("user_id"):
            return _error("invalid_arguments")
        return self._store_view(params.get("view"), f"V{len(self.views) + 1:08d}")

    def _user_info(self, params: dict[str, Any]) -> Payload:
        user = str(params.get("user", ""))
        if not user:
            return _error("user_not_found")
        default = {
            "id": user,
            "name": user.lower(),
            "real_name": f"User {user}",
            "tz": "Europe/Paris",
            "is_bot": False,
        }
        return {"ok": True, "user": self.users.get(user, default)}

"""The life of a broadcast before it reaches the outbox: request, preview, change, approve, reject, cancel.

Chat surfaces call these with the acting person's stable id; each call asks the policy again and changes
the database with a compare-and-set, so double clicks, racing approvers and replayed requests find
nothing left to change.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from relay import audit, images, link_cards, outbox, policy, replays
from relay.audit import Where
from relay.config import Config, DestinationConfig
from relay.destination import Destination, Image, Rationed
from relay.model import Broadcast, BroadcastState, Delivery
from relay.own import Own, OwnDestinations
from relay.render import InputError, Rendering, clean, render
from relay.reports import LISTED, Report, needs_rows
from relay.store import Connection, Row, Store, Unwritable

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a broadcast's id looks like: chat commands that name one ("retract b1a2b3c4d") are told apart from
# a message that merely starts with the same word.
BROADCAST_ID = re.compile(r"^b[0-9a-f]{8}$")


UNCONFIRMED_SWEEP = 60.0  # seconds between sweeps of the images of drafts left to expire (see `request`)
IMAGELESS_KEPT = 4096  # broadcasts this process requested without images, remembered so none is read for them


class Listener(Protocol):
    """A chat surface, told of every decision whichever surface it was made on (a broadcast asked for in
    Slack may be approved in Teams)."""

    async def pending(self, broadcast: Broadcast) -> None:
        """Waiting for an approver: ask this surface's approvers."""
        ...

    async def decided(self, broadcast: Broadcast) -> None:
        """Approved, rejected or cancelled: close this surface's requests, and report if it is the origin."""
        ...


class Refused(Exception):
    """The person may not do this, it is too late, or it cannot be saved now; the message is for them."""


@dataclass(frozen=True)
class Approval:
    broadcast: Broadcast
    sent: bool  # False: the author's confirmation made it a request waiting for an approver


class Broadcasts:
    def __init__(
        self,
        store: Store,
        config: Config,
        destinations: Mapping[str, Destination],
        on_approved: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        own: OwnDestinations | None = None,
    ) -> None:
        self.store = store
        self.own = own  # the leaders' own accounts, for audiences with `own_accounts` (relay.own)
        self._swept_at = 0.0  # when a request last swept out the images of drafts left to expire
        # Images are attached when a broadcast is requested or never: one requested here without any is drawn
        # again (its preview, its approval) without asking the database for its images.
        self._imageless: dict[str, None] = {}
        self.config = config
        self.destinations = destinations
        # Checked once: a protocol's isinstance looks at every one of its methods, for each rendering drawn.
        self._rationed = {name: d for name, d in destinations.items() if isinstance(d, Rationed)}
        self.on_approved = on_approved
        self.clock = clock
        self.listeners: list[Listener] = []
        # One text is rendered to check it, to show it and again at approval: the last few are kept (a
        # rendering depends only on the text, the audience and the configuration, and is immutable).
        self._rendered = functools.lru_cache(maxsize=64)(self._render)

    @property
    def audiences(self) -> list[str]:
        return list(self.config.audiences)

    def preview(self, text: str, audience: str, attached: tuple[Image, ...] = ()) -> tuple[Rendering, ...]:
        """Exactly what each destination of `audience` will receive, images included (raises InputError on
        bad text). Fitting a large photo takes a moment: from the event loop, call `rendered`."""
        text = clean(text)
        if audience not in self.config.audiences:
            raise Refused(f"There is no audience called '{audience}'. Choose one of: {', '.join(self.audiences)}.")
        return tuple(self._with_allowance(rendering) for rendering in self._rendered(text, audience, attached))

    def _with_allowance(self, rendering: Rendering) -> Rendering:
        """A network's daily allowance changes by the minute, so it is applied after the cached rendering."""
        destination = self._rationed.get(rendering.destination)
        if destination is None or not rendering.parts:
            return rendering
        allowance = destination.allowance(len(rendering.parts))
        warnings = rendering.warnings + ((allowance.warning,) if allowance.warning else ())
        return replace(rendering, warnings=warnings, error=rendering.error or allowance.error)

    async def rendered(self, broadcast: Broadcast, text: str | None = None) -> tuple[Rendering, ...]:
        """A stored broadcast's preview (`renderings`), with its images, fitted off the event loop."""
        if broadcast.id in self._imageless:
            return self.renderings(broadcast, text)
        attached = await images.load(self.store, broadcast.id)
        if not attached:
            return self.renderings(broadcast, text)
        return await asyncio.to_thread(self.renderings, broadcast, text, attached)

    def _render(self, text: str, audience: str, attached: tuple[Image, ...]) -> tuple[Rendering, ...]:
        return tuple(self._render_one(text, d, attached) for d in self.config.audience(audience))

    def _render_one(self, text: str, config: DestinationConfig, attached: tuple[Image, ...]) -> Rendering:
        destination = self.destinations[config.name]
        rendering = render(config.name, text, destination.limits, config.allow_broadcast_mentions)
        rendering = replace(rendering, replies=destination.replies_note())
        rendering = images.describe(rendering, attached, destination.limits.images, config.kind)
        return link_cards.describe(rendering, destination.limits, with_images=bool(attached))

    def renderings(
        self, broadcast: Broadcast, text: str | None = None, attached: tuple[Image, ...] = ()
    ) -> tuple[Rendering, ...]:
        """What each destination of the broadcast receives: its audience's, and its author's own accounts where
        the audience reaches them. An own account that must be connected again is an error here, so the preview
        says so before anyone approves."""
        text = clean(text or broadcast.text)
        company = self.preview(text, broadcast.audience, attached)
        if self.own is None or broadcast.audience not in self.config.own_accounts:
            return company
        now = self.clock()
        own = []
        for mine in self._own(broadcast):
            name, destination = mine.config.name, mine.destination
            rendering = images.describe(
                replace(render(name, text, destination.limits, False), replies=destination.replies_note()),
                attached,
                destination.limits.images,
                mine.config.kind,
            )
            if problem := mine.account.needs_reconnecting(now):
                rendering = replace(
                    rendering,
                    error=f"{name} must be connected again ({problem}): use the accounts command, or choose an "
                    "audience without your own accounts.",
                )
            own.append(rendering)
        return company + tuple(own)

    def configs(self, broadcast: Broadcast) -> dict[str, DestinationConfig]:
        """The configuration of every destination `renderings` may name."""
        return {**self.config.destinations, **{own.config.name: own.config for own in self._own(broadcast)}}

    def _own(self, broadcast: Broadcast) -> list[Own]:
        """The author's own accounts this broadcast may reach: once the author has confirmed it for an approver,
        those they saw in their preview, and none connected since."""
        mine = self.own.cached(broadcast.author) if self.own is not None else []
        confirmed = broadcast.own_confirmed
        return mine if confirmed is None else [own for own in mine if own.config.name in confirmed]

    async def request(
        self,
        actor: str,
        text: str,
        audience: str | None,
        origin: str,
        origin_ref: dict[str, Any],
        *,
        where: Where,
        attachments: Sequence[images.Attachment] = (),
        unseen: replays.Unseen | None = None,
    ) -> Broadcast:
        """A leader asks to broadcast: a draft only its author sees, until confirmed. Attached images are
        stripped of their metadata here, before anything is stored. `unseen`: the signed request asking it,
        noted as seen in the draft's own transaction (raises replays.Copy, writing nothing, for a copy)."""
        _check(policy.may_request(self.config.policy, actor))
        audience = audience or self.config.policy.default_audience
        text = clean(text)
        if len(attachments) > images.MAX_IMAGES:
            raise Refused(f"A broadcast carries at most {images.MAX_IMAGES} images; {len(attachments)} are attached.")
        if attachments:
            attached = await asyncio.to_thread(
                lambda: tuple(images.clean(a, number) for number, a in enumerate(attachments, start=1))
            )
            await asyncio.to_thread(self.preview, text, audience, attached)
        else:
            attached = ()
            self.preview(text, audience)
        now = self.clock()
        broadcast_id = "b" + secrets.token_hex(4)
        row = {
            "id": broadcast_id,
            "author": actor,
            "text": text,
            "audience": audience,
            "state": BroadcastState.DRAFT.value,
            "created_at": now,
            "expires_at": now + self.config.policy.pending_for.total_seconds(),
            "origin": origin,
            "origin_ref": json.dumps(origin_ref),
            "report_ref": "{}",
        }

        # The images of drafts left to expire are swept out now and then, not in every request: the sweep
        # reads the whole broadcasts table, which beside other requests' serializable writes restarts them.
        sweep = now - self._swept_at > UNCONFIRMED_SWEEP
        if sweep:
            self._swept_at = now

        def insert(conn: Connection) -> None:
            if unseen is not None:
                unseen.note(conn)
            conn.execute(
                f"INSERT INTO broadcasts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            if sweep:
                images.drop_unconfirmed(conn, now)
            images.insert(conn, broadcast_id, attached)
            with_images = f" with {len(attached)} image{'s' * (len(attached) > 1)}" if attached else ""
            detail = f"audience {audience}{with_images}: {text[:200]}"
            audit.record(conn, now, actor, "requested", broadcast_id, where, detail)

        await (self._write(insert) if unseen is None else unseen.within(self._write(insert)))
        if not attached:
            self._imageless[broadcast_id] = None
            if len(self._imageless) > IMAGELESS_KEPT:
                del self._imageless[next(iter(self._imageless))]
        if self.own is not None and audience in self.config.own_accounts:
            await self.own.load(actor)
        unset = {
            "decided_by": None,
            "retract_requested_by": None,
            "send_at": None,
            "pending_text": None,
            "own_confirmed": None,
        }
        return Broadcast.from_row({**row, **unset})  # as written: no need to read it back

    async def get(self, broadcast_id: str) -> Broadcast:
        def run(conn: Connection) -> Row | None:
            row: Row | None = conn.execute("SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,)).fetchone()
            return row

        row = await self.store.call(run)
        if row is None:
            raise Refused(f"There is no broadcast {broadcast_id}.")
        broadcast = Broadcast.from_row(row)
        if self.own is not None and broadcast.audience in self.config.own_accounts:
            await self.own.load(broadcast.author)  # what its previews show, as they are now
        return broadcast

    async def deliveries(self, broadcast_id: str) -> list[Delivery]:
        return await outbox.for_broadcast(self.store, broadcast_id)

    async def report(self, broadcast_id: str) -> Report:
        """What the broadcast's live report shows now."""
        return Report.of(await outbox.alike(self.store, broadcast_id, LISTED, needs_rows))

    async def history(self, actor: str, limit: int) -> list[tuple[Broadcast, list[Delivery]]]:
        """Recent broadcasts with their deliveries, for the people allowed to see them."""
        _check(policy.may_view(self.config.policy, actor))
        return [(b, await self.deliveries(b.id)) for b in await self.recent(limit)]

    async def status(self, actor: str, broadcast_id: str) -> tuple[Broadcast, list[Delivery]]:
        """One broadcast with its deliveries, for the people allowed to see them."""
        _check(policy.may_view(self.config.policy, actor))
        broadcast = await self.get(broadcast_id)
        return broadcast, await self.deliveries(broadcast.id)

    async def recent(self, limit: int = 20) -> list[Broadcast]:
        return await recent(self.store, limit)

    async def for_change(self, actor: str, broadcast_id: str) -> Broadcast:
        """The broadcast, if `actor` may edit it now (to open an editor on it)."""
        current = await self.get(broadcast_id)
        _check(policy.may_change(self.config.policy, actor, current))
        return current

    async def for_correction(self, actor: str, broadcast_id: str) -> Broadcast:
        """The broadcast, if `actor` may correct it now (to open the correction form only for them)."""
        current = await self.get(broadcast_id)
        _check(policy.may_correct(self.config.policy, actor, current))
        return current

    async def change(
        self, actor: str, broadcast_id: str, *, where: Where, text: str | None = None, audience: str | None = None
    ) -> Broadcast:
        """The author edits a draft's text or picks another audience."""
        current = await self.for_change(actor, broadcast_id)
        new_text = clean(text) if text is not None else current.text
        new_audience = audience or current.audience
        await self.rendered(replace(current, audience=new_audience), new_text)
        await self._move(
            current,
            (BroadcastState.DRAFT,),
            "state = 'draft', text = ?, audience = ?",
            (new_text, new_audience),
            (actor, "edited", where, f"audience {new_audience}: {new_text[:200]}"),
        )
        return await self.get(broadcast_id)

    async def describe_images(self, actor: str, broadcast_id: str, alts: Mapping[int, str], *, where: Where) -> None:
        """The author gives a draft's images their alt text (`alts`: image number → text), on a surface that
        asks for it only after the images arrived (Teams has no alt text for a pasted image). Only a draft:
        what an approver was asked to approve does not change under them."""
        current = await self.for_change(actor, broadcast_id)
        if current.state is not BroadcastState.DRAFT:
            raise Refused("The alt text can be changed only before the broadcast is sent for approval.")
        for number, alt in alts.items():
            if len(alt.strip()) > images.MAX_ALT:
                length, most = len(alt.strip()), images.MAX_ALT
                raise InputError(f"The alt text of image {number} is {length:,} characters; keep it under {most:,}.")

        def run(conn: Connection) -> None:
            conn.executemany(
                "UPDATE broadcast_images SET alt = ? WHERE broadcast_id = ? AND position = ?",
                [(alt.strip(), broadcast_id, number - 1) for number, alt in alts.items()],
            )
            detail = " · ".join(f"image {number}: {alt.strip()[:80]}" for number, alt in sorted(alts.items()))
            audit.record(conn, self.clock(), actor, "described images", broadcast_id, where, detail)

        await self._write(run)

    async def cancel(self, actor: str, broadcast_id: str, *, where: Where) -> Broadcast:
        current = await self.for_change(actor, broadcast_id)
        await self._move(
            current,
            (BroadcastState.DRAFT, BroadcastState.PENDING),
            "state = 'cancelled', decided_by = ?, decided_at = ?",
            (actor, self.clock()),
            (actor, "cancelled", where, ""),
        )
        return await self._announce(broadcast_id, pending=False)

    async def reject(self, actor: str, broadcast_id: str, *, where: Where) -> Broadcast:
        current = await self.get(broadcast_id)
        _check(policy.may_reject(self.config.policy, actor, current))
        if current.state in (BroadcastState.RETRACT_PENDING, BroadcastState.EDIT_PENDING):  # it stays as it is
            what = "retraction" if current.state is BroadcastState.RETRACT_PENDING else "correction"
            await self._move(
                current,
                (current.state,),
                "state = 'approved', pending_text = NULL",
                (),
                (actor, f"{what} rejected", where, ""),
                expiry=False,
            )
            return await self._announce(broadcast_id, pending=False)
        await self._move(
            current,
            (BroadcastState.PENDING,),
            "state = 'rejected', decided_by = ?, decided_at = ?",
            (actor, self.clock()),
            (actor, "rejected", where, ""),
        )
        return await self._announce(broadcast_id, pending=False)

    async def approve(self, actor: str, broadcast_id: str, *, where: Where, send_at: float | None = None) -> Approval:
        """The author's confirmation, or an approver's decision.

        With approvers configured, the author's confirmation turns the draft into a request. Otherwise, or
        from an approver, the state change and one delivery row per destination commit in one
        transaction; the outbox posts them after the commit.
        """
        current = await self.get(broadcast_id)
        _check(policy.may_approve(self.config.policy, actor, current))
        if current.state is BroadcastState.RETRACT_PENDING:
            await self._take_back(current, actor, where)
            return Approval(await self._announce(broadcast_id, pending=False), sent=True)
        if current.state is BroadcastState.EDIT_PENDING:
            await self._apply_correction(current, current.pending_text or current.text, actor, where)
            return Approval(await self._announce(broadcast_id, pending=False), sent=True)
        renderings = await self.rendered(current)
        errors = [r.error for r in renderings if r.error]
        if errors:
            raise Refused(" ".join(errors))
        if send_at is not None and current.state is not BroadcastState.DRAFT:
            raise Refused("Only its author can choose when a broadcast goes out.")
        when = f" for {_utc(send_at)}" if send_at else ""
        if current.state is BroadcastState.DRAFT and policy.needs_second_person(self.config.policy):
            own = [r.destination for r in renderings if r.destination not in self.config.destinations]
            await self._move(
                current,
                (BroadcastState.DRAFT,),
                "state = 'pending', send_at = ?, own_confirmed = ?",
                (send_at, json.dumps(own)),
                (actor, "submitted for approval", where, when.strip()),
            )
            return Approval(await self._announce(broadcast_id, pending=True), sent=False)

        kinds = {d.name: (d.kind, d.dry_run) for d in self.configs(current).values()}
        rows = [(r, *kinds[r.destination]) for r in renderings]
        now = self.clock()
        due = max(now, send_at or current.send_at or now)
        when = f" for {_utc(due)}" if due > now else ""
        await self._move(
            current,
            (current.state,),
            "state = 'approved', decided_by = ?, decided_at = ?, send_at = ?",
            (actor, now, due if due > now else None),
            (actor, "approved", where, f"to {', '.join(r.destination for r in renderings)}{when}"),
            then=lambda conn: outbox.insert_deliveries(conn, broadcast_id, rows, due, now),
        )
        self.on_approved()
        return Approval(await self._announce(broadcast_id, pending=False), sent=True)

    async def reschedule(self, actor: str, broadcast_id: str, send_at: float, *, where: Where) -> Broadcast:
        """Move a scheduled broadcast that has not started going out."""
        current = await self.get(broadcast_id)
        _check(policy.may_reschedule(self.config.policy, actor, current))
        now = self.clock()

        def run(conn: Connection) -> int:
            moved = outbox.reschedule(conn, broadcast_id, send_at, now)
            if moved:
                conn.execute("UPDATE broadcasts SET send_at = ? WHERE id = ?", (send_at, broadcast_id))
                audit.record(conn, now, actor, "rescheduled", broadcast_id, where, f"for {_utc(send_at)}")
            return moved

        if not await self._write(run):
            raise Refused("This broadcast has already started going out; it can no longer be moved.")
        self.on_approved()
        return await self.get(broadcast_id)

    async def unschedule(self, actor: str, broadcast_id: str, *, where: Where) -> Broadcast:
        """Cancel a scheduled broadcast before its time: nothing goes out."""
        current = await self.get(broadcast_id)
        _check(policy.may_reschedule(self.config.policy, actor, current))
        now = self.clock()
        try:
            await self._move(
                current,
                (BroadcastState.APPROVED,),
                "state = 'cancelled', send_at = NULL",
                (),
                (actor, "cancelled before its time", where, ""),
                then=lambda conn: outbox.unschedule(conn, broadcast_id, now),
                expiry=False,
            )
        except outbox.Started:
            raise Refused("This broadcast has already started going out: retract it instead.") from None
        return await self._announce(broadcast_id, pending=False)

    async def retract(self, actor: str, broadcast_id: str, *, where: Where) -> Approval:
        """Take a sent broadcast back everywhere. Without approvers, at once; with them, it waits for one
        (other than the asker) to approve, as sending did. `sent` says whether deletion has begun."""
        current = await self.get(broadcast_id)
        _check(policy.may_retract(self.config.policy, actor, current))
        if policy.needs_second_person(self.config.policy):
            await self._move(
                current,
                (BroadcastState.APPROVED,),
                "state = 'retract-pending', retract_requested_by = ?",
                (actor,),
                (actor, "retraction requested", where, ""),
                expiry=False,
            )
            return Approval(await self._announce(broadcast_id, pending=True), sent=False)
        await self._take_back(current, actor, where)
        return Approval(await self._announce(broadcast_id, pending=False), sent=True)

    async def correct(self, actor: str, broadcast_id: str, text: str, *, where: Where) -> Approval:
        """Correct the staff posts (Slack, Teams) of a sent broadcast in place; public networks cannot
        edit, and are left as they are (retract and post again for those). With approvers configured, one
        must agree first, as for sending. `sent` says whether the correction has begun."""
        current = await self.get(broadcast_id)
        _check(policy.may_correct(self.config.policy, actor, current))
        text = clean(text)
        if not self._corrections(current, text):
            raise Refused("None of this broadcast's destinations can be edited: retract it and post again.")
        if policy.needs_second_person(self.config.policy):
            await self._move(
                current,
                (BroadcastState.APPROVED,),
                "state = 'edit-pending', pending_text = ?",
                (text,),
                (actor, "correction requested", where, text[:200]),
                expiry=False,
            )
            return Approval(await self._announce(broadcast_id, pending=True), sent=False)
        await self._apply_correction(current, text, actor, where)
        return Approval(await self._announce(broadcast_id, pending=False), sent=True)

    def _corrections(self, current: Broadcast, text: str) -> dict[str, str]:
        """The corrected text for each destination that can be edited, refused if it does not fit."""
        texts = {}
        for destination in self.config.audience(current.audience):
            adapter = self.destinations[destination.name]
            if adapter.editable:
                rendering = render(destination.name, text, adapter.limits, destination.allow_broadcast_mentions)
                if rendering.error:
                    raise Refused(rendering.error)
                texts[destination.name] = rendering.parts[0]
        return texts

    async def _apply_correction(self, current: Broadcast, text: str, actor: str, where: Where) -> None:
        now, texts = self.clock(), self._corrections(current, text)
        await self._move(
            current,
            (current.state,),
            "state = 'approved', text = ?, pending_text = NULL",
            (text,),
            (actor, "corrected", where, f"{', '.join(texts)}: {text[:200]}"),
            then=lambda conn: outbox.insert_edits(conn, current.id, texts, now),
            expiry=False,
        )
        self.on_approved()

    async def _take_back(self, current: Broadcast, actor: str, where: Where) -> None:
        now = self.clock()
        await self._move(
            current,
            (current.state,),
            "state = 'retracted', retract_requested_by = COALESCE(retract_requested_by, ?)",
            (actor,),
            (actor, "retracted", where, ""),
            then=lambda conn: outbox.insert_retractions(conn, current.id, now),
            expiry=False,
        )
        self.on_approved()

    async def remember(self, broadcast_id: str, key: str, value: Any) -> None:
        """Keep one surface handle (where its report or approval requests are), merged with the others'
        so two surfaces writing at once cannot erase each other's."""

        def run(conn: Connection) -> None:
            row = conn.execute("SELECT report_ref FROM broadcasts WHERE id = ?", (broadcast_id,)).fetchone()
            refs = {**json.loads(row["report_ref"] or "{}"), key: value}
            conn.execute("UPDATE broadcasts SET report_ref = ? WHERE id = ?", (json.dumps(refs), broadcast_id))

        await self.store.write(run)

    async def _announce(self, broadcast_id: str, pending: bool) -> Broadcast:
        """Tell every surface; one failing surface must not keep the others, or the caller, from going on."""
        for listener in self.listeners:
            broadcast = await self.get(broadcast_id)
            try:
                await (listener.pending(broadcast) if pending else listener.decided(broadcast))
            except Exception:
                log.exception("a chat surface failed to hear of broadcast %s", broadcast_id)
        return await self.get(broadcast_id)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """One transaction for a person's action. A disk that refuses it (full) is told to them as a refusal
        at once, on every surface: nothing was changed, so nothing unapproved can go out, and they may
        simply try again once it is fixed."""
        try:
            return await self.store.write(fn)
        except Unwritable as error:
            raise Refused(
                f"Could not save this: {error.cause}. Nothing was changed and nothing was sent; "
                "try again once the relay's operator has fixed it."
            ) from error

    async def _move(
        self,
        current: Broadcast,
        from_states: tuple[BroadcastState, ...],
        assignments: str,
        values: tuple[Any, ...],
        trail: tuple[str, str, Where, str],
        then: Callable[[Connection], None] | None = None,
        expiry: bool = True,
    ) -> None:
        """Compare-and-set: change the row only if it is still in one of `from_states` and, for a
        decision about sending, not expired (a sent broadcast can be taken back at any time)."""
        now = self.clock()
        not_after = now if expiry else 0.0
        placeholders = ", ".join("?" * len(from_states))

        def run(conn: Connection) -> str:
            cursor = conn.execute(
                f"UPDATE broadcasts SET {assignments} WHERE id = ? AND state IN ({placeholders}) AND expires_at > ?",
                (*values, current.id, *(s.value for s in from_states), not_after),
            )
            if cursor.rowcount == 1:
                actor, action, where, detail = trail
                audit.record(conn, now, actor, action, current.id, where, detail)
                if then is not None:
                    then(conn)
                images.drop_when_final(conn, current.id)
                return "ok"
            row = conn.execute("SELECT state, expires_at FROM broadcasts WHERE id = ?", (current.id,)).fetchone()
            if (
                row["state"] in (BroadcastState.DRAFT.value, BroadcastState.PENDING.value)
                and row["expires_at"] <= not_after
            ):
                conn.execute("UPDATE broadcasts SET state = 'expired' WHERE id = ?", (current.id,))
                images.drop_when_final(conn, current.id)
                return BroadcastState.EXPIRED.value
            return str(row["state"])

        outcome = await self._write(run)
        if outcome == BroadcastState.EXPIRED.value:
            raise Refused("This broadcast has expired. Send it again with /broadcast.")
        if outcome != "ok":
            raise Refused(f"This broadcast is already {outcome}; nothing was changed.")


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _check(decision: policy.Decision) -> None:
    if not decision.allowed:
        raise Refused(decision.reason)


async def recent(store: Store, limit: int = 20) -> list[Broadcast]:
    """The latest broadcasts, newest first; needs no configuration (`relay list` reads a copy without it)."""

    def run(conn: Connection) -> list[Row]:
        return conn.execute("SELECT * FROM broadcasts ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()

    return [Broadcast.from_row(r) for r in await store.call(run)]

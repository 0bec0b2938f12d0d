"""Images with a broadcast: stripped of EXIF before they are stored, fitted to each network's limits, shown in
the preview, uploaded at delivery and gone from the database once every post is final."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import PIL.Image
import pytest
from PIL import ImageCms

from adapters import SPECS, build_destinations
from relay.audit import TERMINAL
from relay.broadcasts import Broadcasts, Refused
from relay.config import load_config, settings_from_env
from relay.dispatcher import Dispatcher
from relay.images import Attachment
from relay.model import Delivery, DeliveryState
from relay.outbox import RetryPolicy
from relay.render import InputError
from relay.store import Store, store_for
from tests.bot_process import BotProcess, free_port
from tests.conftest import LEADER, Relay, bot_env, config_text, preview_id, public_env
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX, Fault
from tests.pds_fixture import Pds
from tests.slack_requests import TEAM

LEAD = "slack:U0LEAD"
FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_cap=0.05)
GPS_LATITUDE = (48.0, 51.0, 29.0)  # where the photo was taken: must reach no network
# A colour profile, as a phone's wide-gamut photo carries: not personal, and without it colours shift.
PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

CONFIG = """
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "mastodon"

[destinations.company-mastodon]
kind = "mastodon"

[destinations.company-x]
kind = "x"

[destinations.company-bluesky]
kind = "bluesky"
handle = "newsroom.test"

[destinations.company-linkedin]
kind = "linkedin"
organization = "urn:li:organization:2414183"

[destinations.staff]
kind = "slack"
channel = "C0STAFF"

[audiences]
mastodon = ["company-mastodon"]
x = ["company-x"]
bluesky = ["company-bluesky"]
linkedin = ["company-linkedin"]
staff = ["staff"]
photo-networks = ["company-mastodon", "company-x", "company-bluesky"]
public = ["company-mastodon", "company-x", "company-bluesky", "company-linkedin"]
everyone = ["staff", "company-mastodon", "company-x", "company-bluesky", "company-linkedin"]
"""


def photo(width: int = 640, height: int = 480, kind: str = "JPEG", noise: bool = False) -> bytes:
    """A photo as a phone makes it: with EXIF carrying the camera and where it was taken."""
    if noise:  # noise does not compress: a large file, as a camera's is
        pixels = PIL.Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        pixels = PIL.Image.new("RGB", (width, height), (30, 120, 200))
    exif = PIL.Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: GPS_LATITUDE, 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    options = {"quality": 95} if kind == "JPEG" else {}
    pixels.save(out, kind, exif=exif.tobytes(), icc_profile=PROFILE, **options)
    return out.getvalue()


def assert_clean(data: bytes) -> PIL.Image.Image:
    """An uploaded file carries no EXIF at all (so no GPS), and is a real image."""
    assert b"PhoneMaker" not in data
    opened = PIL.Image.open(io.BytesIO(data))
    assert not opened.getexif() and "exif" not in opened.info
    assert opened.info.get("icc_profile") == PROFILE, "the colour profile is kept"
    return opened


@dataclass
class World:
    broadcasts: Broadcasts
    store: Store
    changed: asyncio.Queue[str]

    async def send(self, text: str, audience: str, attachments: list[Attachment]) -> str:
        draft = await self.broadcasts.request(LEAD, text, audience, "test", {}, where=TERMINAL, attachments=attachments)
        await self.broadcasts.approve(LEAD, draft.id, where=TERMINAL)
        return draft.id

    async def settled(self, broadcast_id: str) -> list[Delivery]:
        async with asyncio.timeout(20):
            while True:
                deliveries = await self.broadcasts.deliveries(broadcast_id)
                if deliveries and all(d.state.final for d in deliveries):
                    return deliveries
                await self.changed.get()

    async def posted(self, delivery: Delivery) -> list[str]:
        """The remote ids a delivery recorded (`deliveries()` leaves them out, as reports do)."""

        def run(conn) -> list[str]:  # type: ignore[no-untyped-def]
            return list(
                json.loads(conn.execute("SELECT posted FROM deliveries WHERE id = ?", (delivery.id,)).fetchone()[0])
            )

        return await self.store.call(run)

    async def stored_images(self, broadcast_id: str) -> int:
        def run(conn) -> int:  # type: ignore[no-untyped-def]
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM broadcast_images WHERE broadcast_id = ?", (broadcast_id,)
                ).fetchone()[0]
            )

        return await self.store.call(run)


@pytest.fixture
async def world(
    tmp_path: Path, slack: FakeSlack, x: FakeX, mastodon: FakeMastodon, linkedin: FakeLinkedIn, pds: Pds
) -> AsyncIterator[Callable[..., Awaitable[World]]]:
    running: list[tuple[asyncio.Task[None], Store, dict]] = []  # type: ignore[type-arg]

    async def make(config: str = CONFIG, **env: str) -> World:
        environment = {
            **bot_env(tmp_path, slack, x, config),
            **public_env(mastodon, linkedin),
            "BLUESKY_PDS_URL": pds.url,
            "BLUESKY_APP_PASSWORD": pds.account("newsroom.test").app_password,
            **env,
        }
        settings = settings_from_env(environment)
        loaded = load_config(settings, SPECS)
        store = store_for(settings)
        await store.open()
        destinations = build_destinations(loaded, settings, store)
        for destination in destinations.values():
            await destination.prepare()
        changed: asyncio.Queue[str] = asyncio.Queue()
        dispatcher = Dispatcher(store, destinations, on_change=changed.put_nowait, retry=FAST)
        broadcasts = Broadcasts(store, loaded, destinations, on_approved=dispatcher.poke)
        running.append((asyncio.create_task(dispatcher.run()), store, destinations))
        return World(broadcasts, store, changed)

    yield make
    for task, store, destinations in running:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for destination in destinations.values():
            await destination.close()
        await store.close()


async def test_two_photos_reach_mastodon_with_alt_text_and_no_gps(world, mastodon: FakeMastodon) -> None:
    w = await world()
    attachments = [
        Attachment(photo(), "Our new office, seen from the street"),
        Attachment(photo(kind="PNG"), "A chart"),
    ]
    broadcast = await w.send("We moved!", "mastodon", attachments)
    [delivery] = await w.settled(broadcast)
    assert delivery.state is DeliveryState.SENT, delivery.last_error
    [status] = mastodon.statuses
    assert [m.description for m in status.media] == ["Our new office, seen from the street", "A chart"]
    assert [m.content_type for m in status.media] == ["image/jpeg", "image/png"]
    for media in status.media:
        assert_clean(media.data)
    # The upload was processed before the status referred to it: the fake refuses one still processing.
    assert mastodon.calls_to("GET /api/v1/media/:id")
    assert await w.stored_images(broadcast) == 0


async def test_the_images_are_stored_stripped_until_the_broadcast_is_final(world, mastodon) -> None:
    w = await world()
    draft = await w.broadcasts.request(
        LEAD, "Soon", "mastodon", "test", {}, where=TERMINAL, attachments=[Attachment(photo(), "A photo")]
    )

    def stored(conn):  # type: ignore[no-untyped-def]
        return conn.execute("SELECT data FROM broadcast_images WHERE broadcast_id = ?", (draft.id,)).fetchall()

    [row] = await w.store.call(stored)
    assert_clean(bytes(row["data"]))
    await w.broadcasts.cancel(LEAD, draft.id, where=TERMINAL)
    assert await w.stored_images(draft.id) == 0


async def test_a_public_network_refuses_an_image_without_alt_text(world) -> None:
    w = await world()
    draft = await w.broadcasts.request(
        LEAD, "Look", "mastodon", "test", {}, where=TERMINAL, attachments=[Attachment(photo(), "")]
    )
    [rendering] = await w.broadcasts.rendered(draft)
    assert rendering.error == "Image 1 has no alt text, which company-mastodon needs: describe what it shows."
    with pytest.raises(Refused, match="no alt text"):
        await w.broadcasts.approve(LEAD, draft.id, where=TERMINAL)


async def test_what_is_not_an_image_is_refused_and_nothing_is_stored(world) -> None:
    w = await world()
    with pytest.raises(InputError, match=r"Image 1 \(notes.txt\) is not a JPEG, PNG, GIF or WebP image"):
        await w.broadcasts.request(
            LEAD,
            "Look",
            "mastodon",
            "test",
            {},
            where=TERMINAL,
            attachments=[Attachment(b"just some text", "alt", "notes.txt")],
        )
    assert not await w.broadcasts.recent()


async def test_an_upload_that_fails_is_retried_with_the_post(world, mastodon: FakeMastodon) -> None:
    mastodon.faults.add("POST /api/v2/media", Fault.status(503, {"error": "unavailable"}))
    w = await world()
    [delivery] = await w.settled(await w.send("Again", "mastodon", [Attachment(photo(), "A photo")]))
    assert delivery.state is DeliveryState.SENT and delivery.attempts == 2
    [status] = mastodon.statuses
    assert len(status.media) == 1


async def test_an_upload_whose_answer_is_lost_never_doubles_the_post(world, mastodon: FakeMastodon) -> None:
    mastodon.faults.add("POST /api/v2/media", Fault.drop_after())
    w = await world()
    [delivery] = await w.settled(await w.send("Once", "mastodon", [Attachment(photo(), "A photo")]))
    assert delivery.state is DeliveryState.SENT
    assert len(mastodon.statuses) == 1 and len(mastodon.calls_to("POST /api/v2/media")) == 2
    orphan = [m for m in mastodon.media.values() if m.status_id is None]
    assert len(orphan) == 1  # the upload whose answer was lost: harmless, never shown


async def bluesky_post(pds: Pds, uri: str) -> dict[str, Any]:
    did, collection, rkey = uri.removeprefix("at://").split("/")
    async with aiohttp.ClientSession() as http:
        params = {"repo": did, "collection": collection, "rkey": rkey}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.getRecord", params=params) as response:
            return dict((await response.json())["value"])


async def blob(pds: Pds, did: str, cid: str) -> bytes:
    async with aiohttp.ClientSession() as http:
        params = {"did": did, "cid": cid}
        async with http.get(f"{pds.url}/xrpc/com.atproto.sync.getBlob", params=params) as response:
            assert response.status == 200
            return await response.read()


async def test_a_large_photo_is_resized_for_bluesky_and_accepted_by_the_real_pds(world, pds: Pds) -> None:
    w = await world()
    big = photo(4000, 3000, noise=True)
    assert len(big) > 12_000_000
    draft = await w.broadcasts.request(
        LEAD, "A view", "bluesky", "test", {}, where=TERMINAL, attachments=[Attachment(big, "The view from the roof")]
    )
    [rendering] = await w.broadcasts.rendered(draft)
    assert rendering.images[0].startswith("image 1: resized from 4000×3000 to ")
    await w.broadcasts.approve(LEAD, draft.id, where=TERMINAL)
    [delivery] = await w.settled(draft.id)
    assert delivery.state is DeliveryState.SENT, delivery.last_error
    [posted] = await w.posted(delivery)
    record = await bluesky_post(pds, posted.split(" ")[0])
    [image] = record["embed"]["images"]
    assert image["alt"] == "The view from the roof"
    width, height = image["aspectRatio"]["width"], image["aspectRatio"]["height"]
    assert max(width, height) <= 2000 and abs(width / height - 4 / 3) < 0.01
    uploaded = await blob(pds, pds.account("newsroom.test").did, image["image"]["ref"]["$link"])
    assert len(uploaded) <= 1_000_000 and assert_clean(uploaded).size == (width, height)


async def test_a_12_mb_photo_is_resized_for_x_and_bluesky_and_sent_as_is_to_mastodon(
    world, pds: Pds, x: FakeX, mastodon: FakeMastodon
) -> None:
    w = await world()
    big = photo(4000, 3000, noise=True)
    assert len(big) > 12_000_000
    draft = await w.broadcasts.request(
        LEAD, "The view", "photo-networks", "test", {}, where=TERMINAL, attachments=[Attachment(big, "The view")]
    )
    notes = {r.destination: r.images for r in await w.broadcasts.rendered(draft)}
    assert notes["company-mastodon"] == ("image 1: as attached",)
    assert notes["company-x"][0].startswith("image 1: resized from 4000×3000")
    assert notes["company-bluesky"][0].startswith("image 1: resized from 4000×3000")

    def stored(conn):  # type: ignore[no-untyped-def]
        return bytes(
            conn.execute("SELECT data FROM broadcast_images WHERE broadcast_id = ?", (draft.id,)).fetchone()[0]
        )

    kept = await w.store.call(stored)
    await w.broadcasts.approve(LEAD, draft.id, where=TERMINAL)
    deliveries = await w.settled(draft.id)
    assert [d.state for d in deliveries] == [DeliveryState.SENT] * 3, [d.last_error for d in deliveries]
    [status] = mastodon.statuses
    assert status.media[0].data == kept  # within Mastodon's 16 MB: as stored, not re-encoded
    [tweet] = x.tweets
    [sent] = tweet.media
    assert len(sent.data) <= 5 * 1024 * 1024 and sent.alt == "The view"
    assert assert_clean(sent.data).size[0] < 4000
    assert len(x.calls_to("POST /2/media/upload")) > 3  # INIT, APPEND in chunks, FINALIZE
    assert x.calls_to("GET /2/media/upload")  # STATUS while it was processing: the fake refuses it earlier
    assert await w.stored_images(draft.id) == 0


async def test_two_photos_reach_every_kind_of_destination_once_with_their_alt_text(
    world, pds: Pds, slack: FakeSlack, x: FakeX, mastodon: FakeMastodon, linkedin: FakeLinkedIn
) -> None:
    w = await world()
    alts = ["Our new office, seen from the street", "The team on the roof"]
    attachments = [Attachment(photo(1600, 1200), alts[0]), Attachment(photo(800, 800, kind="PNG"), alts[1])]
    broadcast = await w.send("We moved!", "everyone", attachments)
    deliveries = await w.settled(broadcast)
    assert [d.state for d in deliveries] == [DeliveryState.SENT] * 5, [d.last_error for d in deliveries]
    [message] = slack.messages("C0STAFF")
    shown = [b for b in message["blocks"] if b["type"] == "image"]
    assert [b["alt_text"] for b in shown] == alts
    assert message["blocks"][0]["text"]["text"] == "We moved!" and message["metadata"]["event_type"]
    files = [slack.files[b["slack_file"]["id"]] for b in shown]
    assert [f.alt_txt for f in files] == alts and all(f.completed for f in files)
    assert not slack.refusals
    [status] = mastodon.statuses
    [tweet] = x.tweets
    [post] = linkedin.posts
    assert [m.description for m in status.media] == alts
    assert [m.alt for m in tweet.media] == alts
    assert [i.alt for i in post.images] == alts
    by_name = {d.destination: d for d in deliveries}
    [posted] = await w.posted(by_name["company-bluesky"])
    record = await bluesky_post(pds, posted.split(" ")[0])
    assert [i["alt"] for i in record["embed"]["images"]] == alts
    uploads = (
        [f.data or b"" for f in files]
        + [m.data for m in status.media]
        + [m.data for m in tweet.media]
        + [i.data or b"" for i in post.images]
    )
    for image in record["embed"]["images"]:
        uploads.append(await blob(pds, pds.account("newsroom.test").did, image["image"]["ref"]["$link"]))
    for data in uploads:
        assert_clean(data)  # no EXIF, so no GPS, on any network
    assert await w.stored_images(broadcast) == 0


def composer_images(slack: FakeSlack, alts: list[str], *files: tuple[bytes, str, str]) -> dict[str, Any]:
    """The composer's image inputs as Slack submits them: files the leader uploaded, and their alt text."""
    added = [slack.add_file(data, name, mimetype) for data, name, mimetype in files]
    picked = [{"id": f.id, "name": f.name, "mimetype": f.mimetype} for f in added]
    return {
        "images": {"images": {"type": "file_input", "files": picked}},
        "alt": {"alt": {"type": "plain_text_input", "value": "\n".join(alts)}},
    }


async def test_a_leader_attaches_two_photos_in_the_slack_composer_and_they_go_out(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    await relay.command(LEADER, "")
    [opened] = await slack.wait_for(lambda: slack.calls_to("views.open"))
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert [b["element"]["type"] for b in view["blocks"]][-2:] == ["file_input", "plain_text_input"]
    metadata = json.loads(view["private_metadata"])
    alts = ["The new office", "A chart of Q3 sales"]
    images = composer_images(
        slack, alts, (photo(), "office.jpg", "image/jpeg"), (photo(kind="PNG"), "q3.png", "image/png")
    )
    response = await relay.submit_view(LEADER, "compose", metadata, "We moved!", "everyone", images)
    assert response.status == 200
    preview = await relay.answer(metadata["response_url"].rsplit("/", 1)[1])
    assert "image 1: as attached · image 2: as attached" in json.dumps(preview, ensure_ascii=False)
    await relay.click(LEADER, "approve", preview_id(preview))
    report = await relay.final_report()
    assert "2 of 2 delivered." in report
    [message] = slack.messages("C0STAFF")
    assert [b["alt_text"] for b in message["blocks"] if b["type"] == "image"] == alts
    [tweet] = x.tweets
    assert [m.alt for m in tweet.media] == alts
    for media in tweet.media:
        assert_clean(media.data)
    assert not slack.refusals


async def test_alt_text_is_required_before_a_photo_goes_to_a_public_network(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    images = composer_images(slack, [], (photo(), "office.jpg", "image/jpeg"))
    response = await relay.submit_view(
        LEADER, "compose", {"response_url": slack.response_url("r1")}, "Hi", "everyone", images
    )
    assert response.status == 200
    preview = json.dumps(await relay.answer("r1"))
    assert "Image 1 has no alt text, which company-x needs: describe what it shows." in preview


async def test_a_correction_keeps_the_images_and_a_retraction_takes_the_posts_with_them(
    world, pds: Pds, slack: FakeSlack, x: FakeX, mastodon: FakeMastodon, linkedin: FakeLinkedIn
) -> None:
    w = await world()
    alts = ["The new office", "The team"]
    broadcast = await w.send("We moved!", "everyone", [Attachment(photo(), alts[0]), Attachment(photo(), alts[1])])
    await w.settled(broadcast)
    await w.broadcasts.correct(LEAD, broadcast, "We moved to Lyon!", where=TERMINAL)
    await w.settled(broadcast)
    [message] = slack.messages("C0STAFF")
    assert message["blocks"][0]["text"]["text"] == "We moved to Lyon!"
    assert [b["alt_text"] for b in message["blocks"] if b["type"] == "image"] == alts
    bluesky = next(d for d in await w.broadcasts.deliveries(broadcast) if d.destination == "company-bluesky")
    [posted] = await w.posted(bluesky)
    await w.broadcasts.retract(LEAD, broadcast, where=TERMINAL)
    deliveries = await w.settled(broadcast)
    assert all(d.state is DeliveryState.SENT for d in deliveries if d.action == "delete")
    assert not slack.messages("C0STAFF") and not mastodon.statuses and not x.tweets and not linkedin.posts
    did, collection, rkey = posted.split(" ")[0].removeprefix("at://").split("/")
    async with aiohttp.ClientSession() as http:
        params = {"repo": did, "collection": collection, "rkey": rkey}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.getRecord", params=params) as response:
            assert response.status == 400  # RecordNotFound: the post, and its embed of images, are gone
    assert await w.stored_images(broadcast) == 0


async def test_killed_between_upload_and_post_and_again_after_the_post_it_posts_once(
    tmp_path: Path, slack: FakeSlack, x: FakeX
) -> None:
    port = free_port()
    process = BotProcess({**bot_env(tmp_path, slack, x, config_text()), "PORT": str(port)})
    # First attempt: the image is uploaded, its alt text lands, and the bot dies before posting.
    x.faults.add("POST /2/media/metadata", Fault.hang())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        relay = Relay(f"http://127.0.0.1:{port}", slack, http)
        try:
            await process.start()
            images = composer_images(slack, ["The new office"], (photo(), "office.jpg", "image/jpeg"))
            metadata = {"response_url": slack.response_url("crash")}
            await relay.submit_view(LEADER, "compose", metadata, "Survives a crash, with a photo.", "public", images)
            await relay.click(LEADER, "approve", preview_id(await relay.answer("crash")))
            await x.wait_for(lambda: x.calls_to("POST /2/media/metadata"), timeout=20)
            await process.kill()
            # Second attempt: the post lands and its answer is lost to another death.
            x.faults.add("POST /2/tweets", Fault.hang())
            await process.start()
            await x.wait_for(lambda: x.calls_to("POST /2/tweets"), timeout=20)
            await process.kill()
            await process.start()
            assert "1 of 1 delivered." in await relay.final_report(timeout=30)
        finally:
            await process.stop()
    [tweet] = x.tweets
    [media] = tweet.media
    assert media.alt == "The new office"
    assert_clean(media.data)
    assert len(x.calls_to("POST /2/tweets")) == 1, "the post whose answer was lost was found, not repeated"
    assert len([c for c in x.calls_to("POST /2/media/upload") if c.params.get("command") == "INIT"]) == 2


async def test_a_scheduled_broadcast_uploads_when_it_goes_out_so_no_upload_id_expires(world, x: FakeX) -> None:
    x.media_ttl = 1.0  # an upload made at approval would have expired before the post
    w = await world()
    draft = await w.broadcasts.request(
        LEAD, "Later, with a chart", "x", "test", {}, where=TERMINAL, attachments=[Attachment(photo(), "A chart")]
    )
    await w.broadcasts.approve(LEAD, draft.id, where=TERMINAL, send_at=time.time() + 1.5)
    assert not x.calls_to("POST /2/media/upload")  # nothing is uploaded before its time
    [delivery] = await w.settled(draft.id)
    assert delivery.state is DeliveryState.SENT, delivery.last_error
    [tweet] = x.tweets
    assert [m.alt for m in tweet.media] == ["A chart"]


def message_action(user: str, message: dict[str, Any], response_url: str) -> str:
    """Slack's payload when someone uses the message shortcut "Broadcast this message"."""
    payload = {
        "type": "message_action",
        "callback_id": "broadcast_message",
        "trigger_id": "trigger.shortcut",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "channel": {"id": "C0CMD", "name": "leadership"},
        "message_ts": message["ts"],
        "message": message,
        "response_url": response_url,
        "api_app_id": "A0APP",
        "token": "deprecated-verification-token",
    }
    return urlencode({"payload": json.dumps(payload)})


async def test_the_message_shortcut_broadcasts_a_leaders_message_with_its_images(
    start_relay, slack: FakeSlack, x: FakeX
) -> None:
    relay = await start_relay()
    shared = [
        slack.add_file(photo(), "office.jpg", "image/jpeg"),
        slack.add_file(photo(kind="PNG"), "q3.png", "image/png"),
    ]
    files = [{"id": f.id, "name": f.name, "mimetype": f.mimetype} for f in shared]
    said = {"type": "message", "user": LEADER, "ts": "1700000000.000100", "text": "We moved!", "files": files}
    response = await relay.post_signed(message_action(LEADER, said, slack.response_url("shortcut")))
    assert response.status == 200
    [opened] = await slack.wait_for(lambda: slack.calls_to("views.open"))
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["blocks"][0]["element"]["initial_value"] == "We moved!"
    assert "`office.jpg`, `q3.png`" in json.dumps(view)
    alts = {"alt": {"alt": {"type": "plain_text_input", "value": "The new office\nQ3 sales"}}}
    metadata = json.loads(view["private_metadata"])
    await relay.submit_view(LEADER, "compose", metadata, "We moved!", "everyone", alts)
    await relay.click(LEADER, "approve", preview_id(await relay.answer("shortcut")))
    assert "2 of 2 delivered." in await relay.final_report()
    [tweet] = x.tweets
    assert [m.alt for m in tweet.media] == ["The new office", "Q3 sales"]
    [message] = slack.messages("C0STAFF")
    assert len([b for b in message["blocks"] if b["type"] == "image"]) == 2
    assert not slack.refusals


async def test_the_message_shortcut_refuses_someone_elses_message(start_relay, slack: FakeSlack) -> None:
    relay = await start_relay()
    said = {"type": "message", "user": "U0OTHER", "ts": "1700000000.000200", "text": "Not mine"}
    await relay.post_signed(message_action(LEADER, said, slack.response_url("theirs")))
    [answer] = await slack.wait_for(lambda: slack.responses.get("theirs"))
    assert answer["text"] == "Only a message you wrote can be broadcast: copy it into /broadcast instead."
    assert not slack.calls_to("views.open")


async def test_the_images_of_a_draft_left_to_expire_leave_the_database(world) -> None:
    w = await world()
    forgotten = await w.broadcasts.request(
        LEAD, "Never confirmed", "x", "test", {}, where=TERMINAL, attachments=[Attachment(photo(), "A photo")]
    )
    assert await w.stored_images(forgotten.id) == 1
    w.broadcasts.clock = lambda: time.time() + 3 * 24 * 3600  # days later, someone else asks to broadcast
    await w.broadcasts.request(LEAD, "Another day", "x", "test", {}, where=TERMINAL)
    assert await w.stored_images(forgotten.id) == 0

"""Images for the networks that fetch them by URL (Threads, Teams): the bot's own server serves each one,
fitted, at an unguessable URL under RELAY_PUBLIC_URL, for as long as a post may still need it."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import PIL.Image
import pytest

from adapters import SPECS
from relay.config import load_config, settings_from_env
from relay.startup import startup_warnings
from tests.conftest import LEADER, TEAMS_ENV, Relay, bot_env, preview_id
from tests.fakes import FakeSlack, FakeThreads, FakeX
from tests.fakes.teams import FakeConnector
from tests.teams_activities import ANNOUNCEMENTS, TeamsClient, installed_in_team
from tests.test_correct import correct, corrected_report
from tests.test_images import assert_clean, composer_images, photo
from tests.test_retract import retracted_report

ALTS = ["Our new office, seen from the street", "A chart of Q3 sales, up 12%"]

CONFIG = f"""
[policy]
leaders = ["slack:U0LEAD"]
default_audience = "both"

[destinations.company-threads]
kind = "threads"

[destinations.teams-announcements]
kind = "teams"
channel = "{ANNOUNCEMENTS}"

[audiences]
both = ["company-threads", "teams-announcements"]
threads = ["company-threads"]
"""


@pytest.fixture
async def threads() -> AsyncIterator[FakeThreads]:
    async with FakeThreads(image_polls=2) as fake:
        yield fake


async def start(start_relay, threads: FakeThreads, connector: FakeConnector, **env: str) -> Relay:  # type: ignore[no-untyped-def]
    settings = {"THREADS_ACCESS_TOKEN": threads.token, "THREADS_API_URL": threads.api_url, **TEAMS_ENV, **env}
    relay: Relay = await start_relay(CONFIG, public="RELAY_PUBLIC_URL" not in env, **settings)
    status, _ = await TeamsClient(relay.url, relay.http).send(installed_in_team(connector.service_url))
    assert status in (200, 202)
    return relay


async def preview(relay: Relay, slack: FakeSlack, audience: str) -> dict:  # type: ignore[type-arg]
    """The leader attaches a photo and a chart in the Slack composer; the preview they get."""
    images = composer_images(
        slack,
        ALTS,
        (photo(2400, 1800), "office.jpg", "image/jpeg"),
        (photo(800, 600, kind="PNG"), "q3.png", "image/png"),
    )
    metadata = {"response_url": slack.response_url("r1")}
    response = await relay.submit_view(LEADER, "compose", metadata, "We moved!", audience, images)
    assert response.status == 200
    assert not (refused := await response.text()), refused
    return await relay.answer("r1")


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        return answer.status, answer.content_type, await answer.read()


async def test_two_photos_reach_threads_as_a_carousel_and_teams_as_card_images_once_with_alt_text(
    start_relay, slack: FakeSlack, threads: FakeThreads, connector: FakeConnector
) -> None:
    relay = await start(start_relay, threads, connector)
    shown = await preview(relay, slack, "both")
    assert "image 1: resized from 2400×1800 to 1024×768" in json.dumps(shown, ensure_ascii=False)
    await relay.click(LEADER, "approve", preview_id(shown))
    assert "2 of 2 delivered." in await relay.final_report()

    [post] = threads.posts
    assert post.text == "We moved!" and [image.alt for image in post.images] == ALTS
    assert [image.mime for image in post.images] == ["image/jpeg", "image/png"]
    for image in post.images:
        assert_clean(image.data)
    kinds = sorted(c.media_type for c in threads.containers.values())
    assert kinds == ["CAROUSEL", "IMAGE", "IMAGE"], "two carousel items, one carousel, made once"
    assert len(threads.calls_to("POST /:id/threads_publish")) == 1

    [message] = connector.posted(ANNOUNCEMENTS)
    assert message["text"] == "We moved!"
    [card] = connector.cards(ANNOUNCEMENTS)
    assert [element["altText"] for element in card["body"]] == ALTS
    assert [(p.alt, p.mime) for p in connector.pictures] == list(zip(ALTS, ["image/jpeg", "image/png"], strict=True))
    office = PIL.Image.open(io.BytesIO(connector.pictures[0].data))
    assert office.size == (1024, 768), "within Teams' 1024×1024 for card images"
    assert PIL.Image.open(io.BytesIO(post.images[0].data)).size == (2400, 1800), "Threads takes it as it is"
    assert not connector.refused

    # A reader opening the channel later still sees the images: they are served while the Teams post stands,
    # and a correction of the text keeps them (Teams replaces the whole message: the card is sent again).
    await correct(relay, preview_id(shown), "We moved to Lyon!")
    await corrected_report(relay)
    [message] = connector.posted(ANNOUNCEMENTS)
    assert message["text"] == "We moved to Lyon!"
    [card] = connector.cards(ANNOUNCEMENTS)
    assert [element["altText"] for element in card["body"]] == ALTS
    assert [(p.alt, p.mime) for p in await connector.look_again()] == list(
        zip(ALTS, ["image/jpeg", "image/png"], strict=True)
    )
    await relay.command(LEADER, f"retract {preview_id(shown)}")
    await retracted_report(relay)
    assert not connector.posted(ANNOUNCEMENTS) and not threads.posts
    for url in [p.url for p in connector.pictures] + [image.url for image in post.images]:
        assert (await fetch(url))[0] == 404, "once no post needs them, the images are gone"


async def test_an_image_url_answers_only_while_the_broadcast_may_still_post_and_only_as_made(
    start_relay, slack: FakeSlack, threads: FakeThreads, connector: FakeConnector
) -> None:
    relay = await start(start_relay, threads, connector)
    shown = await preview(relay, slack, "threads")
    await relay.click(LEADER, "approve", preview_id(shown))
    assert "1 of 1 delivered." in await relay.final_report()
    [post] = threads.posts
    assert [image.alt for image in post.images] == ALTS
    status, _, _ = await fetch(post.images[0].url)
    assert status == 404, "Threads has its copy: the URL expired with the broadcast's last post"


async def test_a_forged_or_altered_image_url_is_not_found(
    start_relay, slack: FakeSlack, threads: FakeThreads, connector: FakeConnector
) -> None:
    relay = await start(start_relay, threads, connector)
    shown = await preview(relay, slack, "both")
    await relay.click(LEADER, "approve", preview_id(shown))
    [picture, chart] = await connector.wait_for(lambda: connector.pictures if len(connector.pictures) == 2 else None)
    status, kind, data = await fetch(picture.url)
    assert (status, kind) == (200, "image/jpeg") and data == picture.data
    base, token = picture.url.rsplit("/", 1)
    payload, mac, extension = token.split(".")
    other_payload = chart.url.rsplit("/", 1)[1].split(".")[0]
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for forged in (
        f"{base}/{payload}.{flipped}.{extension}",  # an altered MAC
        f"{base}/{other_payload}.{mac}.{extension}",  # another image's address with this MAC
        f"{base}/{payload}.{mac}.png",  # another format
        f"{base}/{payload}.{mac}",
        f"{base}/{payload}",
        f"{base}/",
        f"{base}/..%2Frelay.db",
    ):
        assert (await fetch(forged))[0] == 404, forged


async def test_without_a_public_url_threads_and_teams_refuse_images_in_the_preview_saying_what_to_set(
    start_relay, slack: FakeSlack, threads: FakeThreads, connector: FakeConnector
) -> None:
    relay = await start(start_relay, threads, connector, RELAY_PUBLIC_URL="")
    words = json.dumps(await preview(relay, slack, "both"), ensure_ascii=False)
    assert "set RELAY_PUBLIC_URL so that Threads can fetch the images" in words
    assert "set RELAY_PUBLIC_URL so that Teams can fetch the images" in words


async def test_an_image_threads_cannot_fetch_fails_the_post_saying_so_and_nothing_is_posted(
    start_relay, slack: FakeSlack, threads: FakeThreads, connector: FakeConnector
) -> None:
    # A public URL that leads nowhere (a wrong port): Threads cannot download the images.
    relay = await start(start_relay, threads, connector, RELAY_PUBLIC_URL="http://127.0.0.1:9/relay")
    shown = await preview(relay, slack, "threads")
    await relay.click(LEADER, "approve", preview_id(shown))
    report = await relay.final_report()
    assert "Media download has failed" in report
    assert not threads.posts


@pytest.mark.parametrize(("url", "warned"), [("http://relay.example.com", True), ("https://relay.example.com", False)])
def test_a_public_url_threads_and_teams_cannot_fetch_from_is_said_at_start(
    tmp_path: Path, slack: FakeSlack, x: FakeX, threads: FakeThreads, url: str, warned: bool
) -> None:
    environment = {
        **bot_env(tmp_path, slack, x, CONFIG),
        **TEAMS_ENV,
        "THREADS_ACCESS_TOKEN": threads.token,
        "RELAY_PUBLIC_URL": url,
    }
    settings = settings_from_env(environment)
    lines = startup_warnings(settings, load_config(settings, SPECS))
    said = "RELAY_PUBLIC_URL is not an https:// address: teams and threads fetch images over HTTPS only"
    assert any(said in line for line in lines) is warned

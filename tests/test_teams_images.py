"""Images a leader pastes or attaches in their chat with the Teams bot: fetched as Teams allows (a pasted one
with the bot's token, an attached file at its pre-signed URL), given alt text in the preview card, and posted
once, stripped of EXIF, where the preview said."""

from __future__ import annotations

import pytest

from tests.fakes import FakeMastodon, FakeX
from tests.fakes.teams import FakeConnector
from tests.teams_activities import CEO, TeamsClient, message, personal
from tests.test_images import assert_clean, photo
from tests.test_teams_auth import CREDENTIALS, token
from tests.test_teams_auth import bot_framework_keys as bot_framework_keys
from tests.test_teams_flow import card_id, card_text, click

pytestmark = pytest.mark.usefixtures("bot_framework_keys")

CONFIG = f"""
[policy]
leaders = ["teams:{CEO}"]
default_audience = "public"

[destinations.company-x]
kind = "x"

[destinations.company-mastodon]
kind = "mastodon"

[audiences]
public = ["company-x", "company-mastodon"]
"""
ALTS = ["The new office in Lyon, seen from the street", "A chart of Q3 sales, up 12%"]
CHAT = personal(CEO)["id"]


class SignedTeams(TeamsClient):
    """Teams, signing every activity as the Bot Framework does."""

    async def send(self, activity: dict[str, object], token_: str | None = None) -> tuple[int, object]:  # type: ignore[override]
        return await super().send(activity, token_ or token())


async def start(start_relay, connector: FakeConnector, mastodon: FakeMastodon) -> SignedTeams:  # type: ignore[no-untyped-def]
    relay = await start_relay(CONFIG, MASTODON_URL=mastodon.url, MASTODON_ACCESS_TOKEN=mastodon.token, **CREDENTIALS)
    connector.bot_token = "outbound-token"  # what the bot's token provider answers here
    return SignedTeams(relay.url, relay.http)


async def test_a_leader_pastes_and_attaches_two_photos_gives_alt_text_and_they_reach_x_and_mastodon_once(
    start_relay, connector: FakeConnector, x: FakeX, mastodon: FakeMastodon
) -> None:
    teams = await start(start_relay, connector, mastodon)
    pasted = connector.paste(photo(), "image/jpeg")
    attached = connector.attach(photo(kind="PNG"), "q3-chart.png", "image/png")
    said = message(connector.service_url, CEO, "broadcast We opened in Lyon", attachments=[pasted, attached])
    status, _ = await teams.send(said)
    assert status in (200, 202)
    [card] = await connector.wait_for(lambda: connector.cards(CHAT))
    preview = card_text(card)
    fields = [(e["id"], e["label"]) for e in card["body"] if e["type"] == "Input.Text"]
    assert [f[0] for f in fields] == ["alt_1", "alt_2"] and fields[0][1].startswith("Alt text of image 1")
    assert "Image 1 has no alt text, which company-x needs: describe what it shows." in preview
    assert "Approve and send…" not in preview, "nothing goes to a public network without alt text"
    broadcast, card_message = card_id(preview), connector.posted(CHAT)[-1]["id"]
    [(pasted_path, pasted_auth), (file_path, file_auth)] = connector.downloads
    assert pasted_path.startswith("/v3/attachments/") and pasted_auth == "Bearer outbound-token"
    assert file_path.startswith("/personal/") and file_auth is None, "the bot's token never goes to a file's URL"

    alts = {"alt_1": ALTS[0], "alt_2": ALTS[1]}
    saved = await click(teams, connector, CEO, "alt", broadcast, card_message, **alts)
    assert "image 1: as attached · image 2: as attached" in saved and "has no alt text" not in saved
    assert "Approve and send…" in saved and ALTS[0] in saved
    await click(teams, connector, CEO, "approve", broadcast, card_message, **alts)

    await x.wait_for(lambda: x.tweets)
    await mastodon.wait_for(lambda: mastodon.statuses)
    [tweet], [status_] = x.tweets, mastodon.statuses
    assert [m.alt for m in tweet.media] == ALTS
    assert [m.description for m in status_.media] == ALTS
    for data in [m.data for m in tweet.media] + [m.data for m in status_.media]:
        assert_clean(data)
    assert tweet.text == "We opened in Lyon" and status_.text == "We opened in Lyon"
    assert not connector.refused, "the preview card with its alt text fields is a card Teams takes"


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        pytest.param(
            lambda c: c.attach(b"%PDF-1.7 quarterly report", "report.pdf", "application/pdf"),
            "report.pdf is not an image. A broadcast carries images only (JPEG, PNG, GIF or WebP): send the "
            "message again without it.",
            id="a-pdf-file",
        ),
        pytest.param(
            lambda c: c.paste(b"<html>not a picture</html>", "image/png"),
            "Image 1 (pasted image) is not a JPEG, PNG, GIF or WebP image: attach it in one of those.",
            id="a-paste-that-is-not-an-image",
        ),
    ],
)
async def test_what_is_not_an_image_is_refused_with_a_clear_message_and_nothing_is_kept(
    start_relay, connector: FakeConnector, x: FakeX, mastodon: FakeMastodon, sent, said: str
) -> None:
    teams = await start(start_relay, connector, mastodon)
    status, _ = await teams.send(message(connector.service_url, CEO, "broadcast Q3", attachments=[sent(connector)]))
    assert status in (200, 202)
    [reply] = await connector.wait_for(lambda: connector.posted(CHAT))
    assert said in reply["text"]
    assert not connector.cards(CHAT) and not x.tweets and not mastodon.statuses


async def test_images_without_a_message_are_not_dropped_silently(
    start_relay, connector: FakeConnector, mastodon: FakeMastodon
) -> None:
    teams = await start(start_relay, connector, mastodon)
    pasted = connector.paste(photo(), "image/jpeg")
    status, _ = await teams.send(message(connector.service_url, CEO, "broadcast", attachments=[pasted]))
    assert status in (200, 202)
    [reply] = await connector.wait_for(lambda: connector.posted(CHAT))
    assert "Write the message with the images" in reply["text"]
    assert not connector.cards(CHAT) and not connector.downloads

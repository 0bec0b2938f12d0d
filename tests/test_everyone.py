"""One approved broadcast to `everyone`: all six kinds of destination, each exactly once."""

from __future__ import annotations

import aiohttp

from tests.conftest import LEADER, STAFF_CHANNEL, TEAMS_ENV, preview_id, public_env
from tests.fakes import FakeLinkedIn, FakeMastodon, FakeSlack, FakeX
from tests.fakes.teams import FakeConnector
from tests.pds_fixture import Pds
from tests.teams_activities import ANNOUNCEMENTS, TeamsClient, installed_in_team

CONFIG = f"""
[policy]
leaders = ["slack:{LEADER}"]
default_audience = "everyone"
replies = "restricted"

[destinations.all-staff]
kind = "slack"
channel = "{STAFF_CHANNEL}"

[destinations.teams-announcements]
kind = "teams"
channel = "{ANNOUNCEMENTS}"

[destinations.company-x]
kind = "x"

[destinations.company-mastodon]
kind = "mastodon"

[destinations.company-bluesky]
kind = "bluesky"
handle = "newsroom.test"

[destinations.company-linkedin]
kind = "linkedin"
organization = "urn:li:organization:2414183"

[audiences]
everyone = ["all-staff", "teams-announcements", "company-x", "company-mastodon", "company-bluesky", "company-linkedin"]
"""


async def test_everyone_gets_it_once_and_a_retraction_takes_it_back_everywhere(
    start_relay,
    slack: FakeSlack,
    x: FakeX,
    connector: FakeConnector,
    mastodon: FakeMastodon,
    linkedin: FakeLinkedIn,
    pds: Pds,
) -> None:
    relay = await start_relay(
        CONFIG,
        **TEAMS_ENV,
        **public_env(mastodon, linkedin),
        BLUESKY_PDS_URL=pds.url,
        BLUESKY_APP_PASSWORD=pds.account("newsroom.test").app_password,
    )
    await TeamsClient(relay.url, relay.http).send(installed_in_team(connector.service_url))
    ack = await relay.command(LEADER, "Our year in one line: thank you, all of you.")
    preview = str(ack)
    for note in (
        "only accounts this account follows can reply",
        "Mastodon cannot restrict replies",
        "comments are closed",
    ):
        assert note in preview
    await relay.click(LEADER, "approve", preview_id(ack))
    report = await relay.final_report(timeout=20)
    assert "6 of 6 delivered." in report
    assert len(slack.messages(STAFF_CHANNEL)) == 1
    assert len(connector.posted(ANNOUNCEMENTS)) == 1
    assert len(x.tweets) == 1 and x.calls_to("POST /2/tweets")[0].json["reply_settings"] == "following"
    assert len(mastodon.statuses) == 1
    assert len(linkedin.posts) == 1 and linkedin.posts[0].comments_state == "CLOSED"
    assert report.count("https://bsky.app/profile/newsroom.test/post/") == 1
    await relay.click(LEADER, "retract", preview_id(ack), block_id=f"report:{preview_id(ack)}")
    retracted = await relay.slack.wait_for(
        lambda: [m for m in slack.messages(f"D{LEADER}") if m.get("text", "").endswith("deleted.")], timeout=20
    )
    assert "retracted: 6 of 6 deleted." in retracted[-1]["text"]
    assert not slack.messages(STAFF_CHANNEL) and not connector.posted(ANNOUNCEMENTS) and not x.tweets
    assert not mastodon.statuses and not linkedin.posts
    rkey = report.split("https://bsky.app/profile/newsroom.test/post/")[1][:13]
    async with aiohttp.ClientSession() as http:
        params = {"repo": pds.account("newsroom.test").did, "collection": "app.bsky.feed.post", "rkey": rkey}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.getRecord", params=params) as gone:
            assert gone.status == 400 and (await gone.json())["error"] == "RecordNotFound"

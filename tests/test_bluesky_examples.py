"""The issue's Bluesky examples, posted through the bot to the reference PDS, read back from its records.

The PDS validates every record against the lexicon (300 graphemes, 3,000 bytes, facet shapes); on top of
that each post's facets must cover exactly the words meant, with the whole URL, and be the ones
@atproto/api's own detector finds in that post, besides the words the renderer linked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LEADER
from tests.oracle import Oracle
from tests.pds_fixture import Pds
from tests.test_bluesky import HANDLE, POST, config, posts_of, records, send

JAPANESE = "新しい製品の機能と価格について、担当チームから詳しく説明します。" * 18
GREW = "We grew in every region this quarter. "
LONG = "https://example.com/reports/2026/" + "x" * 400
AT_A_BOUNDARY = "https://example.com/" + "d" * 280

# (message, the facets of the whole thread in order: the words each covers, its kind, its URI or tag);
# words in LINKED are linked by the renderer, the others found by the detector.
EXAMPLES = [
    pytest.param(
        f"新製品の<https://example.com/ja/new|詳細>をご覧ください。{JAPANESE}",
        [("詳細", "link", "https://example.com/ja/new")],
        id="cjk-label-then-a-long-paragraph",
    ),
    pytest.param(
        f"🎉 {GREW * 9}新製品の<https://example.com/ja/new|詳細>をご覧ください。 #新製品",
        [("詳細", "link", "https://example.com/ja/new"), ("#新製品", "tag", "新製品")],
        id="label-in-a-later-part",
    ),
    pytest.param(
        f"<https://example.com/q3|the Q3 report>'s summary. {GREW * 12}",
        [("the Q3 report", "link", "https://example.com/q3")],
        id="label-then-apostrophe",
    ),
    pytest.param(
        "Mercury <https://en.wikipedia.org/wiki/Mercury_(planet)> is the closest planet to the Sun.",
        [("https://en.wikipedia.org/wiki/Mercury_(planet)", "link", "https://en.wikipedia.org/wiki/Mercury_(planet)")],
        id="link-ending-in-a-parenthesis",
    ),
    pytest.param(
        f"#{'a' * 70} is too long a tag for Bluesky; #Q3 is not.",
        [("#Q3", "tag", "Q3")],
        id="hashtag-over-64",
    ),
    pytest.param("👨‍👩‍👧‍👦" * 121, [], id="121-family-emoji"),
    pytest.param(
        f"The whole report: <{LONG}>. {'Read it before Friday. ' * 3}",
        [("example.com/reports/2026...", "link", LONG)],
        id="very-long-link",
    ),
    pytest.param(
        f"{GREW * 6}{AT_A_BOUNDARY} {GREW * 3}",
        [("example.com/dddddddddddd...", "link", AT_A_BOUNDARY)],
        id="link-longer-than-a-thread-part",
    ),
]
LINKED = {"詳細", "the Q3 report", "example.com/reports/2026...", "example.com/dddddddddddd..."}


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    node = Oracle()
    yield node
    node.close()


async def thread(pds: Pds, root_key: str) -> list[dict[str, Any]]:
    """The posts of the thread whose first post has record key `root_key`, first to last, by their replies."""
    everything = await records(pds, POST)
    [root] = [r for r in everything if r["uri"].endswith(f"/{root_key}")]
    replies = {r["value"]["reply"]["parent"]["uri"]: r for r in everything if "reply" in r["value"]}
    posts = [root]
    while posts[-1]["uri"] in replies:
        reply = replies[posts[-1]["uri"]]
        assert reply["value"]["reply"]["root"]["uri"] == root["uri"] and "reply" not in root["value"]
        posts.append(reply)
    return [post["value"] for post in posts]


def covered(post: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each facet of `post` as the words its byte range covers in the post's own text, its kind, its value."""
    encoded = post["text"].encode()
    found = []
    for facet in post.get("facets", []):
        index, feature = facet["index"], facet["features"][0]
        words = encoded[index["byteStart"] : index["byteEnd"]].decode()
        kind = feature["$type"].split("#")[1]
        found.append((words, kind, feature.get("uri") or feature.get("tag")))
    return found


@pytest.mark.parametrize(("message", "expected"), EXAMPLES)
async def test_the_issues_examples_reach_bluesky_as_valid_threads_with_exact_facets(
    start_relay, pds: Pds, oracle: Oracle, message: str, expected: list[tuple[str, str, str]]
) -> None:
    relay = await start_relay(config(), BLUESKY_PDS_URL=pds.url, BLUESKY_APP_PASSWORD=pds.account(HANDLE).app_password)
    report = await send(relay, message)
    assert "1 of 1 delivered." in report, report
    [root_key] = await posts_of(report)
    posts = await thread(pds, root_key)
    total = len(posts)
    assert total == 1 or all(post["text"].endswith(f" ({n}/{total})") for n, post in enumerate(posts, start=1))
    assert [facet for post in posts for facet in covered(post)] == expected
    for post, reference in zip(posts, oracle.richtext([post["text"] for post in posts]), strict=True):
        assert reference["graphemes"] <= 300 and reference["bytes"] <= 3000
        ours = [(f["index"]["byteStart"], f["index"]["byteEnd"]) for f in post.get("facets", [])]
        linked = [span for span, facet in zip(ours, covered(post), strict=True) if facet[0] in LINKED]
        detected = [
            (f["index"]["byteStart"], f["index"]["byteEnd"])
            for f in reference["facets"]
            if not any(f["index"]["byteStart"] < end and start < f["index"]["byteEnd"] for start, end in linked)
        ]
        assert ours == sorted(linked + detected), (post["text"], reference["facets"])


async def test_the_preview_shows_the_label_bluesky_will_show_and_where_it_leads(start_relay, pds: Pds) -> None:
    relay = await start_relay(config(), BLUESKY_PDS_URL=pds.url, BLUESKY_APP_PASSWORD=pds.account(HANDLE).app_password)
    ack = str(await relay.command(LEADER, f"<https://example.com/q3|the Q3 report>'s summary and <{LONG}>"))
    assert "the Q3 report's summary and example.com/reports/2026..." in ack
    assert "“the Q3 report” links to https://example.com/q3" in ack
    assert f"“example.com/reports/2026...” links to {LONG}" in ack
    assert "(https://example.com/q3)" not in ack

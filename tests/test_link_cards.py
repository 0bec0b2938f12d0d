"""Bluesky link cards: a post's first link is read into `app.bsky.embed.external`, from public pages only.

The pages are served here, on loopback, which the relay refuses in production: the tests' relay is built
with a reach that allows loopback (conftest's `loopback`), and the refusal of every non-public address is
tested on its own, with production's `public`, before anything is connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from relay.addresses import Address, Refused, public
from relay.link_cards import MAX_PAGE, read_meta
from relay.pages import CheckedResolver, Pages, Unfetched
from tests.conftest import LEADER, Relay, preview_id
from tests.fakes import FakeSlack
from tests.pds_fixture import Pds
from tests.test_images import assert_clean, composer_images, photo

HANDLE = "newsroom.test"
ARTICLE = """<!doctype html><html><head>
<meta charset="utf-8"><title>Fallback title</title>
<meta property="og:title" content="Q3 results: a record quarter">
<meta property="og:description" content="Revenue up 12%, and what it means for our customers &amp; staff.">
<meta property="og:image" content="/cover.jpg">
</head><body><p>The article.</p></body></html>"""
CONFIG = f"""
[policy]
leaders = ["slack:{LEADER}"]
default_audience = "bluesky"

[destinations.company-bluesky]
kind = "bluesky"
handle = "{HANDLE}"

[audiences]
bluesky = ["company-bluesky"]
"""


class Site:
    """A web site on loopback: an article with Open Graph tags and a photo, a page too big, one too slow."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.released = asyncio.Event()  # the slow page answers only when the test is over
        self.cover = photo(2400, 1260)
        app = web.Application()
        app.router.add_get("/{name}", self.serve)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        if name == "article":
            return web.Response(text=ARTICLE, content_type="text/html")
        if name == "cover.jpg":
            return web.Response(body=self.cover, content_type="image/jpeg")
        if name == "big":  # the tags are at the top: only its size keeps it from a card
            return web.Response(text=ARTICLE + " " * MAX_PAGE, content_type="text/html")
        if name == "big-chunked":  # no Content-Length to believe: counted as it is read
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            await response.prepare(request)
            await response.write(ARTICLE.encode())
            for _ in range(MAX_PAGE // 65536 + 2):
                await response.write(b" " * 65536)
            return response
        if name == "slow":
            await self.released.wait()
            return web.Response(text=ARTICLE, content_type="text/html")
        if name == "redirect":
            raise web.HTTPFound(request.query["to"])
        raise web.HTTPNotFound()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    served = Site()
    await served.server.start_server()
    yield served
    served.released.set()
    await served.server.close()


async def posted(start_relay, pds: Pds, text: str, **env: str) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Broadcast `text` to Bluesky through the relay: the preview shown, and the record the PDS holds."""
    relay = await start_relay(
        CONFIG, BLUESKY_PDS_URL=pds.url, BLUESKY_APP_PASSWORD=pds.account(HANDLE).app_password, **env
    )
    ack = await relay.command(LEADER, text)
    await relay.click(LEADER, "approve", preview_id(ack))
    return ack, (await report_and_record(relay, pds))[1]


async def report_and_record(relay: Relay, pds: Pds) -> tuple[str, dict[str, Any]]:
    """The final report, and the post it links to as the PDS holds it."""
    report = await relay.final_report()
    assert "1 of 1 delivered." in report, report
    rkey = report.split("/post/")[1].split(">")[0].split("|")[0]
    async with aiohttp.ClientSession() as http:
        params = {"repo": pds.account(HANDLE).did, "collection": "app.bsky.feed.post", "rkey": rkey}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.getRecord", params=params) as response:
            return report, (await response.json())["value"]


async def blob(pds: Pds, cid: str) -> bytes:
    async with aiohttp.ClientSession() as http:
        params = {"did": pds.account(HANDLE).did, "cid": cid}
        async with http.get(f"{pds.url}/xrpc/com.atproto.sync.getBlob", params=params) as response:
            assert response.status == 200
            return await response.read()


# ---- through the relay, to the reference PDS ---------------------------------------------------------------


async def test_a_post_with_a_link_carries_the_pages_card_with_its_image(start_relay, pds: Pds, site: Site) -> None:
    link = site.url("/article")
    ack, record = await posted(start_relay, pds, f"Our quarter in one page: {link} and {site.url('/other')}")
    assert f"with a link card, read from the page when posted: {link}" in json.dumps(ack, ensure_ascii=False)
    embed = record["embed"]
    assert embed["$type"] == "app.bsky.embed.external"
    external = embed["external"]
    assert external["uri"] == link
    assert external["title"] == "Q3 results: a record quarter"
    assert external["description"] == "Revenue up 12%, and what it means for our customers & staff."
    assert external["thumb"]["size"] <= 1_000_000 and external["thumb"]["mimeType"] == "image/jpeg"
    thumb = assert_clean(await blob(pds, external["thumb"]["ref"]["$link"]))  # no GPS from the site's photo
    assert max(thumb.size) <= 2000
    assert "other" not in site.requests, "only the first link is read"


@pytest.mark.parametrize("page", ["slow", "big", "big-chunked"])
async def test_a_page_too_slow_or_too_big_gives_no_card_and_the_post_still_goes(
    start_relay, pds: Pds, site: Site, page: str
) -> None:
    text = f"Read {site.url('/' + page)} today"
    started = asyncio.get_running_loop().time()
    _, record = await posted(start_relay, pds, text, RELAY_HTTP_TIMEOUT="3")
    assert record["text"] == text and "embed" not in record
    assert page in site.requests
    if page == "slow":
        assert asyncio.get_running_loop().time() - started < 10, "the card waits 3 s at most, not the page"


async def test_a_post_with_images_gets_no_card(start_relay, slack: FakeSlack, pds: Pds, site: Site) -> None:
    relay = await start_relay(CONFIG, BLUESKY_PDS_URL=pds.url, BLUESKY_APP_PASSWORD=pds.account(HANDLE).app_password)
    await relay.command(LEADER, "")
    [opened] = await slack.wait_for(lambda: slack.calls_to("views.open"))
    view = opened.params["view"]
    metadata = json.loads((json.loads(view) if isinstance(view, str) else view)["private_metadata"])
    images = composer_images(slack, ["Our new office"], (photo(), "office.jpg", "image/jpeg"))
    text = f"We moved: {site.url('/article')}"
    assert (await relay.submit_view(LEADER, "compose", metadata, text, "bluesky", images)).status == 200
    preview = await relay.answer(metadata["response_url"].rsplit("/", 1)[1])
    assert "with a link card" not in json.dumps(preview)
    await relay.click(LEADER, "approve", preview_id(preview))
    _, record = await report_and_record(relay, pds)
    assert record["embed"]["$type"] == "app.bsky.embed.images"
    assert [image["alt"] for image in record["embed"]["images"]] == ["Our new office"]
    assert site.requests == [], "the page is not even read"


# ---- the address check, as production runs it --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.5",
        "172.16.4.4",
        "192.168.1.1",
        "169.254.169.254",  # the cloud's metadata service
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.5",
        "2002:0a00:0005::1",  # 6to4 of 10.0.0.5
    ],
)
def test_a_non_public_address_is_refused(address: str) -> None:
    assert not public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_a_public_address_is_allowed(address: str) -> None:
    assert public(ipaddress.ip_address(address))


async def test_a_host_name_resolving_to_loopback_is_refused_before_connecting() -> None:
    resolver = CheckedResolver(public)
    with pytest.raises(Refused, match=r"localhost resolves to .* not a public address"):
        await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    await resolver.close()


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    reader = Pages(5.0, public)
    yield reader
    await reader.close()


async def test_production_refuses_a_loopback_page_by_address_and_by_name(pages: Pages, site: Site) -> None:
    port = site.server.port
    with pytest.raises(Refused, match=r"127\.0\.0\.1 is not a public address"):
        await pages.get(f"http://127.0.0.1:{port}/article", MAX_PAGE, ("text/html",))
    with pytest.raises(Refused, match="localhost resolves to"):
        await pages.get(f"http://localhost:{port}/article", MAX_PAGE, ("text/html",))
    with pytest.raises(Refused, match="only http and https"):
        await pages.get("file:///etc/passwd", MAX_PAGE, ("text/html",))
    assert site.requests == []


def only(allowed: str) -> Any:
    def reach(address: Address) -> bool:
        return address == ipaddress.ip_address(allowed)

    return reach


def redirect(site: Site, to: str) -> str:
    return str(site.server.make_url("/redirect").with_query(to=to))


async def test_a_redirect_to_a_private_address_is_refused(site: Site) -> None:
    """The first page is allowed (as a public page would be); where it redirects is checked again."""
    pages = Pages(5.0, only("127.0.0.1"))
    reached: list[str] = []

    async def admin(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(text="<title>Internal admin</title>", content_type="text/html")

    internal = web.Application()
    internal.router.add_get("/admin", admin)
    inner = TestServer(internal, host="127.0.0.2")  # an internal service, on another address
    await inner.start_server()
    try:
        with pytest.raises(Refused, match=r"169\.254\.169\.254 is not a public address"):
            await pages.get(redirect(site, "http://169.254.169.254/latest/meta-data/"), MAX_PAGE, ("text/html",))
        with pytest.raises(Refused, match=r"127\.0\.0\.2 is not a public address"):
            await pages.get(redirect(site, f"http://127.0.0.2:{inner.port}/admin"), MAX_PAGE, ("text/html",))
        assert site.requests == ["redirect", "redirect"] and reached == [], "nothing behind a redirect was reached"
        followed = await pages.get(redirect(site, "/article"), MAX_PAGE, ("text/html",))
        assert followed.url.endswith("/article") and b"og:title" in followed.body
    finally:
        await pages.close()
        await inner.close()


async def test_a_page_of_another_type_or_too_big_is_not_read(site: Site) -> None:
    pages = Pages(5.0, only("127.0.0.1"))
    try:
        with pytest.raises(Unfetched, match="image/jpeg, not text/html"):
            await pages.get(site.url("/cover.jpg"), MAX_PAGE, ("text/html",))
        with pytest.raises(Unfetched, match="more than 1,000,000 bytes"):
            await pages.get(site.url("/big-chunked"), MAX_PAGE, ("text/html",))
    finally:
        await pages.close()


@pytest.mark.parametrize(
    ("html", "title", "description", "image"),
    [
        (
            ARTICLE,
            "Q3 results: a record quarter",
            "Revenue up 12%, and what it means for our customers & staff.",
            "/cover.jpg",
        ),
        (
            '<html><head><title>\n  Plain   page </title><meta name="description" content="Its own words">'
            "</head></html>",
            "Plain page",
            "Its own words",
            "",
        ),
        ("<p>No head at all</p>", "", "", ""),
    ],
)
def test_a_pages_card_comes_from_open_graph_then_its_own_tags(
    html: str, title: str, description: str, image: str
) -> None:
    assert read_meta(html) == {"title": title, "description": description, "image": image}


async def test_each_post_of_a_thread_gets_the_card_of_its_own_first_link(start_relay, pds: Pds, site: Site) -> None:
    """As in Bluesky's app, where each post of a thread is composed with its own card."""
    marker = f"thread {id(site)}"
    text = " ".join(f"Point {i}: we invest in the people who serve our customers, {marker}." for i in range(6))
    link = site.url("/article")
    ack, first = await posted(start_relay, pds, f"{text} The whole story: {link}")
    assert f"with a link card, read from the page when posted: {link}" in json.dumps(ack, ensure_ascii=False)
    assert "embed" not in first, "the first post has no link"
    async with aiohttp.ClientSession() as http:
        params = {"repo": pds.account(HANDLE).did, "collection": "app.bsky.feed.post", "limit": "100"}
        async with http.get(f"{pds.url}/xrpc/com.atproto.repo.listRecords", params=params) as response:
            thread = [r["value"] for r in (await response.json())["records"] if marker in r["value"]["text"]]
    [last] = [post for post in thread if link in post["text"]]
    assert last["embed"]["external"]["uri"] == link and last["embed"]["external"]["title"].startswith("Q3 results")
    assert "reply" in last

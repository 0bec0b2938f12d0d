"""The README's rendering table says what each network really gets: its examples are rendered here."""

from __future__ import annotations

from pathlib import Path

import regex

from adapters import bluesky, x
from relay.render import render

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
LABELLED = "<https://example.com/q3|the Q3 report>'s summary"


def row(network: str) -> str:
    [line] = [line for line in README.splitlines() if line.startswith(f"| {network} |")]
    return line


def test_the_table_says_bluesky_shows_labels_linked_and_long_links_shortened() -> None:
    said = row("Bluesky")
    assert "`<url\\|label>` as the label, linked to the URL by a link facet" in said
    rendering = render("b", LABELLED, bluesky.LIMITS, allow_broadcast_mentions=False)
    assert rendering.parts == ("the Q3 report's summary",)
    assert [link.value for link in rendering.links[0]] == ["https://example.com/q3"]
    shortened = regex.search(r"shown shortened as Bluesky's app shows links \(`([^`]+)`\)", said)
    assert shortened is not None
    url = "https://example.com/reports/2026/q3-results/" + "x" * 400
    [part] = render("b", f"Read {url}", bluesky.LIMITS, allow_broadcast_mentions=False).parts
    assert part == f"Read {shortened.group(1)}"


def test_the_table_says_x_shows_the_url_after_the_label() -> None:
    assert "`<url\\|label>` as `label (url)`" in row("X")
    assert render("x", LABELLED, x.LIMITS, allow_broadcast_mentions=False).parts == (
        "the Q3 report (https://example.com/q3) 's summary",
    )

"""How X and Mastodon measure a post: a port of twitter-text 3.1.0, the library both count with.

Why a port: no Python package is faithful. twitter-text-parser (PyPI) builds its emoji pattern from a newer
emoji list than X runs and weighs © as 2 where X counts 1; older ports predate weighted counting. So this
module follows the reference (github.com/twitter/twitter-text, js/src: parseTweet, extractUrlsWithIndices,
the regexp/ pieces) step for step, with its data exported from the npm packages into
`relay/reference/twitter-text-3.1.0.json` by tests/oracle/export_data.mjs: the TLD lists, the character
groups, the v3 weights and twemoji-parser 11.0.2's emoji pattern. tests/test_reference_counts.py holds it to
the npm package itself on thousands of generated texts and on twitter-text's conformance suite.

X runs the JavaScript version, which works on UTF-16 code units: an astral character is two units, weighed
by its low surrogate, and the emoji pattern is written in surrogate pairs. To match it exactly the X
functions run on the text spelled as UTF-16 units (`_units`). Mastodon runs the Ruby gem on code points,
with its own wider URL path rules (config/initializers/twitter_regex.rb) and its own mention pattern
(Account::MENTION_RE), and counts grapheme clusters (StatusLengthValidator).
"""

from __future__ import annotations

import json
import unicodedata
from array import array
from dataclasses import dataclass
from pathlib import Path

import regex

_DATA = json.loads((Path(__file__).parent / "reference" / "twitter-text-3.1.0.json").read_text(encoding="utf-8"))
REFERENCE = str(_DATA["source"])
_CONFIG = _DATA["config"]
MAX_WEIGHTED_LENGTH = int(_CONFIG["maxWeightedTweetLength"])
URL_LENGTH = int(_CONFIG["transformedURLLength"])
_SCALE = int(_CONFIG["scale"])
_DEFAULT_WEIGHT = int(_CONFIG["defaultWeight"])
_RANGES = [(int(r["start"]), int(r["end"]), int(r["weight"])) for r in _CONFIG["ranges"]]
_MAX_URL_LENGTH = 4096  # extractUrlsWithIndices: the longest URL X's backend takes
_MAX_TCO_SLUG_LENGTH = 40
_MAX_LABEL_LENGTH = 63  # lib/idna.js: a DNS label's longest
_MENTION_DOMAIN_MAX = 253  # Mastodon's Extractor::MAX_DOMAIN_LENGTH


def _units(text: str) -> str:
    """`text` as JavaScript sees it: one character per UTF-16 code unit (astral ones as two surrogates)."""
    return "".join(map(chr, array("H", text.encode("utf-16-le", "surrogatepass"))))


def _text(units: str) -> str:
    """Units back to ordinary text (pairs of surrogates joined)."""
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _tlds(names: list[str], js: bool) -> str:
    alternation = "|".join(regex.escape(_units(name) if js else name) for name in names)
    return f"(?:(?:{alternation})(?=[^0-9a-zA-Z@+-]|$))"


_GTLD_JS, _CCTLD_JS = _tlds(_DATA["gtlds"], True), _tlds(_DATA["cctlds"], True)
_GTLD, _CCTLD = _tlds(_DATA["gtlds"], False), _tlds(_DATA["cctlds"], False)
_PUNCT, _SPACES, _INVALID = _DATA["punct"], _DATA["spaces"], _DATA["invalid"]
_DIRECTIONAL, _LATIN, _CYRILLIC = _DATA["directional"], _DATA["latin_accents"], _DATA["cyrillic"]


def _domain(chars: str, gtld: str, cctld: str, punycode: str) -> str:
    subdomain = f"(?:(?:{chars}(?:[_-]|{chars})*)?{chars}\\.)"
    name = f"(?:(?:{chars}(?:-|{chars})*)?{chars}\\.)"
    return f"(?:{subdomain}*{name}(?:{gtld}|{cctld}|{punycode}))"


def _balanced(path_chars: str) -> str:
    return f"\\((?:{path_chars}+|(?:{path_chars}*\\({path_chars}+\\){path_chars}*))\\)"


# X: regexp/extractUrl.js and the pieces it is built from. The path's ending characters are spliced in
# without a group, as regexSupplant does, so their `|` splits the path's alternation just as in the reference.
_PATH_CHARS_X = f"[a-z{_CYRILLIC}0-9!\\*';:=\\+,\\.\\$\\/%#\\[\\]\\-\\u2013_~@\\|&{_LATIN}]"
_PATH_END_X = f"[\\+\\-a-z{_CYRILLIC}0-9=_#\\/{_LATIN}]|(?:{_balanced(_PATH_CHARS_X)})"
_PATH_X = f"(?:(?:{_PATH_CHARS_X}*(?:{_balanced(_PATH_CHARS_X)}{_PATH_CHARS_X}*)*{_PATH_END_X})|(?:@{_PATH_CHARS_X}+/))"
_PUNYCODE_X, _PUNYCODE_M = r"(?:xn--[\-0-9a-z]+)", r"(?:xn--[0-9a-z]+)"
_QUERY_X = r"[a-z0-9!?\*'@\(\);:&=\+\$\/%#\[\]\-_\.,~|]"
_QUERY_END_X = r"[a-z0-9\-_&=#\/]"
_DOMAIN_CHARS_X = f"[^{_PUNCT}{_SPACES}{_INVALID}{_DIRECTIONAL}]"
_URL_X = regex.compile(
    f"(((?:[^A-Za-z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]|^))"
    f"((https?:\\/\\/)?({_domain(_DOMAIN_CHARS_X, _GTLD_JS, _CCTLD_JS, _PUNYCODE_X)})"
    f"(?::([0-9]+))?(\\/{_PATH_X}*)?(\\?{_QUERY_X}*{_QUERY_END_X})?))",
    regex.IGNORECASE,
)
_ASCII_DOMAIN_X = regex.compile(
    f"(?:(?:[\\-a-z0-9{_LATIN}]+)\\.)+(?:{_GTLD_JS}|{_CCTLD_JS}|{_PUNYCODE_X})", regex.IGNORECASE
)
_TCO_X = regex.compile(f"^https?:\\/\\/t\\.co\\/([a-z0-9]+)(?:\\?{_QUERY_X}*{_QUERY_END_X})?", regex.IGNORECASE)
_NO_PROTOCOL_BEFORE = regex.compile(r"[-_.\/]\Z")
_EMOJI = regex.compile(_DATA["emoji"])
_INVALID_CHAR = regex.compile(f"[{_INVALID}]")
_PUNYCODE_SEPARATORS = regex.compile("[\x2e\u3002\uff0e\uff61]")

# Mastodon: the Ruby gem's pieces (rb/lib/twitter-text/regex.rb) with Mastodon's overrides of the path and
# query (config/initializers/twitter_regex.rb). Its path ending keeps the gem's own balanced parentheses: the
# override is interpolated before those are redefined.
_UCHARS = (
    "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd\U00030000-\U0003fffd"
    "\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd\U00070000-\U0007fffd\U00080000-\U0008fffd"
    "\U00090000-\U0009fffd\U000a0000-\U000afffd\U000b0000-\U000bfffd\U000c0000-\U000cfffd\U000d0000-\U000dfffd"
    "\U000e1000-\U000efffd\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
)
_GEM_PATH_CHARS = f"[a-z\\p{{Cyrillic}}0-9!\\*';:=\\+\\,\\.\\$\\/%#\\[\\]\\p{{Pd}}_~&\\|@{_LATIN}]"
_PATH_CHARS_M = r"[^\p{White_Space}<>()?]"
_PATH_END_M = f"[^\\p{{White_Space}}()?!*\"'「」<>;:=,.$%\\[\\]~&|@]|(?:{_balanced(_GEM_PATH_CHARS)})"
_PATH_M = f"(?:(?:{_PATH_CHARS_M}*(?:{_balanced(_PATH_CHARS_M)}{_PATH_CHARS_M}*)*{_PATH_END_M})|(?:{_PATH_CHARS_M}+/))"
_CONTROL_M = "\\t\\n\\x0b\\f\\r\\x00-\\x1f\\x7f"
_DOMAIN_CHARS_M = (
    f"[^{_DIRECTIONAL}!\"#$%&'()*+,\\-./:;<=>?@\\[\\]^_`{{|}}~ {_CONTROL_M}{_INVALID}\\u202a-\\u202e{_SPACES}]"
)
_URL_M = regex.compile(
    f"(((?:[^A-Z0-9@＠$#＃{_INVALID}\\u202a-\\u202e]|[{_DIRECTIONAL}]|^))"
    f"(((?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://)?({_domain(_DOMAIN_CHARS_M, _GTLD, _CCTLD, _PUNYCODE_M)})"
    f"(?::([0-9]+))?(/{_PATH_M}*)?(\\?[a-z0-9!?*'();:&=+$/%#\\[\\]\\-_.,~|@^{_UCHARS}]*[a-z0-9_&=#/\\-{_UCHARS}])?))",
    regex.IGNORECASE | regex.MULTILINE,
)
_TCO_M = regex.compile(r"^https?://t\.co/([a-z0-9]+)", regex.IGNORECASE)
_MENTION_M = regex.compile(r"(?<![=/\w])@((?i:[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@\w+(?:[.-]+\w+)*)?)")
_END_MENTION_M = regex.compile(f"\\A(?:[@＠]|[{_LATIN}]+|://)", regex.IGNORECASE)


@dataclass(frozen=True)
class Url:
    """A link as the reference extracts it; `start` and `end` index the text given (code points)."""

    url: str
    start: int
    end: int


@dataclass(frozen=True)
class Parsed:
    """parseTweet's verdict: X's weighted length, and whether X takes the text."""

    weighted_length: int
    valid: bool


def _valid_domain(domain: str) -> bool:
    """lib/idna.js toAscii: every label punycode-encodable within a DNS label's length."""
    if domain[:4] == "xn--" and not _ASCII_DOMAIN_X.search(domain):
        return False
    for label in domain.split("."):
        parts = _PUNYCODE_SEPARATORS.sub(".", _text(label)).split(".")
        encoded = ".".join(
            "xn--" + part.encode("punycode").decode("ascii") if regex.search(r"[^\x20-\x7e]", part) else part
            for part in parts
        )
        if not 1 <= len(encoded) <= _MAX_LABEL_LENGTH:
            return False
    return True


def _extract_units(units: str) -> list[tuple[str, int, int]]:
    """extractUrlsWithIndices on UTF-16 units, URLs without a protocol included (X's default)."""
    if "." not in units:
        return []
    found: list[tuple[str, int, int]] = []
    for match in _URL_X.finditer(units):
        before, url, protocol, domain, path = match.group(2, 3, 4, 5, 7)
        end = match.end()
        start = end - len(url)
        if not _valid_domain(domain) or len(protocol or "https://") + len(url) > _MAX_URL_LENGTH:
            continue
        if not protocol:
            if _NO_PROTOCOL_BEFORE.search(before):
                continue
            last: list[object] | None = None
            position = 0
            for ascii_match in _ASCII_DOMAIN_X.finditer(domain):
                ascii_start = domain.index(ascii_match.group(0), position)
                position = ascii_start + len(ascii_match.group(0))
                last = [ascii_match.group(0), start + ascii_start, start + position]
                found.append((ascii_match.group(0), start + ascii_start, start + position))
            if last is None:
                continue
            if path:
                found[-1] = (str(last[0]) + url[len(domain) :], int(str(last[1])), end)
        else:
            tco = _TCO_X.match(url)
            if tco:
                if len(tco.group(1)) > _MAX_TCO_SLUG_LENGTH:
                    continue
                url, end = tco.group(0), start + len(tco.group(0))
            found.append((url, start, end))
    return found


def _code_point_index(units: str) -> list[int]:
    """For each unit offset, the code point offset (a low surrogate maps past its pair)."""
    index, count = [], 0
    for unit in units:
        index.append(count)
        if not "\udc00" <= unit <= "\udfff":
            count += 1
    index.append(count)
    return index


def extract_urls(text: str) -> list[Url]:
    """The links X sees in `text` (extractUrlsWithIndices), each of which X counts as 23."""
    units = _units(text)
    where = _code_point_index(units)
    return [Url(_text(url), where[start], where[end]) for url, start, end in _extract_units(units)]


def _weight(unit: str) -> int:
    code = ord(unit)
    return next((weight for start, end, weight in _RANGES if start <= code <= end), _DEFAULT_WEIGHT)


def parse_tweet(text: str) -> Parsed:
    """parseTweet with X's v3 configuration: links 23, an emoji 2, each other unit by its range's weight."""
    units = _units(unicodedata.normalize("NFC", text))
    urls = {start: end for _, start, end in _extract_units(units)}
    emoji = {match.start(): match.end() for match in _EMOJI.finditer(units)}
    weighted, valid, index = 0, True, 0
    while index < len(units):
        if index in urls:
            weighted += URL_LENGTH * _SCALE
            index = urls[index] - 1
        elif index in emoji:
            weighted += _DEFAULT_WEIGHT
            index = emoji[index] - 1
        else:
            if (
                "\ud800" <= units[index] <= "\udbff"
                and index + 1 < len(units)
                and "\udc00" <= units[index + 1] <= "\udfff"
            ):
                index += 1
            weighted += _weight(units[index])
        valid = valid and not _INVALID_CHAR.match(units[index])
        index += 1
    length = weighted // _SCALE if weighted % _SCALE == 0 else weighted / _SCALE
    return Parsed(int(length), valid and 0 < length <= MAX_WEIGHTED_LENGTH)


def weighted_length(text: str) -> int:
    return parse_tweet(text).weighted_length


def mastodon_urls(text: str) -> list[Url]:
    """The links Mastodon counts as `characters_reserved_per_url`: the gem's extractor with a protocol only."""
    if ":" not in text:
        return []
    found = []
    for match in _URL_M.finditer(text):
        url, protocol, domain = match.group(3, 4, 5)
        start, end = match.start(3), match.end(3)
        if not protocol:
            continue
        tco = _TCO_M.match(url)
        if tco:
            if len(tco.group(1)) > _MAX_TCO_SLUG_LENGTH:
                continue
            url, end = tco.group(0), start + len(tco.group(0))
        if _valid_domain(_units(domain)) and len(url) <= _MAX_URL_LENGTH:
            found.append(Url(url, start, end))
    return found


def mastodon_length(text: str, url_length: int = URL_LENGTH) -> int:
    """StatusLengthValidator: grapheme clusters, once each link is `url_length` characters and each mention
    of a remote account (`@alice@example.com`) only its local part (`@alice`); overlaps go to the first."""
    entities: list[tuple[int, int, str]] = [(u.start, u.end, "x" * url_length) for u in mastodon_urls(text)]
    for match in _MENTION_M.finditer(text):
        name = match.group(1)
        domain = name.partition("@")[2]
        if _END_MENTION_M.match(text, match.end()) or len(domain) > _MENTION_DOMAIN_MAX:
            continue
        entities.append((match.start(), match.end(), "@" + name.split("@")[0]))
    pieces, last = [], 0
    for start, end, replacement in sorted(entities):
        if start >= last:
            pieces += [text[last:start], replacement]
            last = end
    pieces.append(text[last:])
    return len(regex.findall(r"\X", "".join(pieces)))

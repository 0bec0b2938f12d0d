"""Which addresses the relay may fetch a page from when a leader's message links to it: public ones only.

A link in a broadcast is the leader's to choose, and the relay fetches it from inside the company's
network (to read a link card's title and image). Without a check, `http://169.254.169.254/` would read
the cloud's instance credentials into a post, and `http://10.0.0.5/admin` an internal page: the address
is checked after DNS resolution, on the addresses the connection will actually use, and on every redirect
(relay/pages.py).

The check is a plain function, `Reach`. Production always uses `public`; only a test passes another
(tests serve their pages on loopback), through `Settings.link_reach`, which no environment variable sets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Reach = Callable[[Address], bool]


class Refused(Exception):
    """A URL the relay will not fetch: its scheme, or an address that is not public."""


def public(address: Address) -> bool:
    """Whether `address` is on the public internet: not private (10/8, 172.16/12, 192.168/16, fc00::/7),
    loopback, link-local (169.254/16, fe80::/10: the cloud metadata service), shared (100.64/10),
    multicast, reserved or unspecified. An IPv4 address mapped into IPv6 is judged as itself."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return public(inner)
    return address.is_global and not address.is_multicast


def check_url(url: str, reach: Reach) -> None:
    """Refuse a URL that is not HTTP(S), or whose host is an IP literal `reach` refuses. A host name is
    checked when it is resolved (relay/pages.py)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"only http and https links are fetched, not {parts.scheme or 'this'}: {url}")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if not reach(literal):
        raise Refused(f"{literal} is not a public address")

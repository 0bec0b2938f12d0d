"""Text from a network or a person, made safe to print on a terminal.

A network's error text or a broadcast's words can carry escape sequences (ESC [ … moves the cursor,
rewrites earlier lines, sets the window title, on some terminals answers back) and bidirectional overrides
that show text in another order than it is. Printed raw, they could make `relay list` show an operator
something other than what happened. They are shown as visible escapes instead (`\\x1b`, `\\u202e`).
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (newline and tab included: each listed value is meant to stay on its line),
# and the bidirectional embeddings, overrides and isolates (unicode.org/reports/tr9).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)

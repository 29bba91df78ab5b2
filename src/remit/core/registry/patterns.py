"""Resource patterns: `*`-only globs, with exact containment and overlap tests.

Only `*` (any run of characters, including none) is special. Keeping the language this small is
what lets containment (`pattern_within`) and overlap (`patterns_overlap`) be decided exactly, and a
security check that is exact cannot be talked into a wider grant than it approved.
"""

from __future__ import annotations

import re

from functools import cache, lru_cache

from remit.errors import InvalidRequest

__all__ = ["MAX_PATTERN_LENGTH", "matches", "parse_pattern", "pattern_within", "patterns_overlap"]

MAX_PATTERN_LENGTH = 512
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


def parse_pattern(raw: str, *, field: str = "pattern") -> str:
    """Validate a resource pattern: 1-512 printable characters; `**` is folded to `*`."""
    if not raw or len(raw) > MAX_PATTERN_LENGTH or _FORBIDDEN.search(raw) or raw != raw.strip():
        msg = f"a resource pattern is 1-{MAX_PATTERN_LENGTH} printable characters without surrounding spaces"
        raise InvalidRequest(msg, field=field)
    while "**" in raw:
        raw = raw.replace("**", "*")
    return raw


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*)", pattern)
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in parts), re.DOTALL)


@lru_cache(maxsize=65_536)  # bounded: resource ids come from requests; the decision path asks the same ones
def matches(pattern: str, resource: str) -> bool:
    """True when the concrete resource id matches the pattern."""
    return _compiled(pattern).fullmatch(resource) is not None


def pattern_within(inner: str, outer: str) -> bool:
    """True when every resource `inner` matches is matched by `outer` too.

    With `*` as the only wildcard this holds exactly when `inner`, read literally, matches `outer`:
    each `*` of `inner` must then fall inside a `*` of `outer`.
    """
    return matches(outer, inner)


def patterns_overlap(first: str, second: str) -> bool:
    """True when some resource id matches both patterns."""
    return _overlap(first, second)


def _overlap(p: str, q: str) -> bool:
    # Two-wildcard-pattern intersection as a reachability search over positions (i in p, j in q):
    # a `*` may swallow nothing, or one more character (literal or `*`) of the other pattern.
    # Iterative, so a long pattern cannot exhaust the stack.
    seen: set[tuple[int, int]] = set()
    pending = [(0, 0)]
    while pending:
        i, j = pending.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(p) and j == len(q):
            return True
        if i < len(p) and p[i] == "*":
            pending.append((i + 1, j))
            if j < len(q):
                pending.append((i, j + 1))
        if j < len(q) and q[j] == "*":
            pending.append((i, j + 1))
            if i < len(p):
                pending.append((i + 1, j))
        if i < len(p) and j < len(q) and p[i] == q[j] != "*":
            pending.append((i + 1, j + 1))
    return False

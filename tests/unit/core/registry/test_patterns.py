"""Resource patterns: `*`-only globs whose containment and overlap tests are exact."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remit.core.registry.patterns import matches, parse_pattern, pattern_within, patterns_overlap
from remit.errors import InvalidRequest

alphabet = st.sampled_from("ab*:/")
patterns = st.text(alphabet, min_size=1, max_size=8)
resources = st.text(st.sampled_from("ab:/"), max_size=8)


@given(inner=patterns, outer=patterns, resource=resources)
def test_within_means_every_match_of_inner_matches_outer(inner: str, outer: str, resource: str) -> None:
    """If inner ⊆ outer, nothing matches inner without matching outer."""
    if pattern_within(inner, outer) and matches(inner, resource):
        assert matches(outer, resource)


@given(first=patterns, second=patterns, resource=resources)
def test_a_common_match_implies_overlap(first: str, second: str, resource: str) -> None:
    """Overlap is never under-reported: a resource matching both proves they overlap."""
    if matches(first, resource) and matches(second, resource):
        assert patterns_overlap(first, second)


@given(first=patterns, second=patterns)
def test_overlap_is_symmetric_and_witnessed(first: str, second: str) -> None:
    """Overlap is symmetric, and when reported there is a concrete witness (stars read as empty or 'a')."""
    assert patterns_overlap(first, second) == patterns_overlap(second, first)
    if patterns_overlap(first, second):
        # Search small instantiations of `first` for one that `second` matches.
        pieces = first.split("*")
        fillers = ["", "a", "b", ":", "/", "ab", "ba", "a:", ":a", "aa", "bb"]
        found = False
        witness = re.compile(".*")
        for combo in _combos(len(pieces) - 1, fillers, limit=4000):
            candidate = "".join(p + f for p, f in zip(pieces, [*combo, ""], strict=True))
            if matches(second, candidate) and witness.fullmatch(candidate):
                found = True
                break
        # Small fillers cannot always reach a witness; only insist when stars are few.
        if first.count("*") + second.count("*") <= 2 and len(second) <= 4:
            assert found


def _combos(n: int, fillers: list[str], *, limit: int) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for _ in range(n):
        out = [c + [f] for c in out for f in fillers][:limit]
    return out


def test_long_patterns_do_not_exhaust_the_stack() -> None:
    assert patterns_overlap("*" + "a" * 500 + "*", "a" * 600)
    assert not patterns_overlap("a" * 512, "b*")


@pytest.mark.parametrize("raw", ["", " x", "x ", "a\x00b", "a" * 513])
def test_bad_patterns_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_pattern(raw)


def test_double_star_folds() -> None:
    assert parse_pattern("repo:**") == "repo:*"

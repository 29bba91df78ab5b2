"""Resource patterns: `*`-only globs whose containment and overlap tests are exact."""

from __future__ import annotations

import itertools

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


small_patterns = st.text(st.sampled_from("ab*"), min_size=1, max_size=4)
SMALL_UNIVERSE = ["".join(bits) for n in range(9) for bits in itertools.product("ab", repeat=n)]


@given(first=small_patterns, second=small_patterns)
def test_overlap_agrees_with_brute_force(first: str, second: str) -> None:
    """On a small alphabet, overlap is reported exactly when some concrete string matches both patterns."""
    brute = any(matches(first, r) and matches(second, r) for r in SMALL_UNIVERSE)
    assert patterns_overlap(first, second) == brute == patterns_overlap(second, first)


@given(inner=small_patterns, outer=small_patterns)
def test_within_agrees_with_brute_force(inner: str, outer: str) -> None:
    """On a small alphabet, inner ⊆ outer is reported only when every string inner matches, outer matches."""
    if pattern_within(inner, outer):
        assert all(matches(outer, r) for r in SMALL_UNIVERSE if matches(inner, r))


def test_long_patterns_do_not_exhaust_the_stack() -> None:
    assert patterns_overlap("*" + "a" * 500 + "*", "a" * 600)
    assert not patterns_overlap("a" * 512, "b*")


@pytest.mark.parametrize("raw", ["", " x", "x ", "a\x00b", "a" * 513])
def test_bad_patterns_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_pattern(raw)


def test_double_star_folds() -> None:
    assert parse_pattern("repo:**") == "repo:*"

"""Parsing of the CLI's compact option values."""

from __future__ import annotations

import contextlib

import pytest

from hypothesis import given
from hypothesis import strategies as st

from remit.cli.parsing import (
    format_duration,
    parse_action,
    parse_date,
    parse_duration,
    parse_human_identity,
    parse_resource,
    parse_step,
)
from remit.errors import InvalidRequest


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90", 90), ("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 1H ", 3600)],
)
def test_durations(raw: str, seconds: int) -> None:
    """Durations accept seconds, s/m/h/d units and combinations in descending order."""
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["", "0", "0s", "-5m", "30x", "m", "30m1h", "1.5h", "9" * 50, "1h" * 30])
def test_bad_durations_are_invalid_requests(raw: str) -> None:
    """Anything that is not a positive duration is invalid_request naming max_duration."""
    with pytest.raises(InvalidRequest) as caught:
        parse_duration(raw)
    assert caught.value.errors[0].loc == ("max_duration",)


@given(st.integers(min_value=1, max_value=30 * 86_400))
def test_format_and_parse_duration_round_trip(seconds: int) -> None:
    """format_duration is the inverse of parse_duration."""
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=60))
def test_duration_parser_never_fails_unexpectedly(raw: str) -> None:
    """Arbitrary text either parses to a positive number of seconds or is InvalidRequest."""
    with contextlib.suppress(InvalidRequest):
        assert parse_duration(raw) > 0


def test_action_and_resource_and_step() -> None:
    """Actions split on the last colon; resource patterns and step resources may contain colons."""
    assert parse_action("merge_pr:write").model_dump() == {"name": "merge_pr", "risk_class": "write", "description": ""}
    resource = parse_resource("repo:acme/*:internal")
    assert (resource.pattern, resource.sensitivity, resource.environment) == ("repo:acme/*", "internal", None)
    resource = parse_resource("env:production:restricted:prod")
    assert (resource.pattern, resource.sensitivity, resource.environment) == ("env:production", "restricted", "prod")
    step = parse_step("github:merge_pr:repo:acme/*")
    assert (step.tool, step.action, step.resource) == ("github", "merge_pr", "repo:acme/*")
    identity = parse_human_identity("https://login.acme.example#ada")
    assert (identity.issuer, identity.subject) == ("https://login.acme.example", "ada")


@pytest.mark.parametrize(
    ("parse", "raw"),
    [
        (parse_action, "merge_pr"),
        (parse_action, "merge_pr:dangerous"),
        (parse_resource, "repo:acme/*"),
        (parse_resource, ":internal"),
        (parse_resource, "repo:secret"),
        (parse_step, "github:merge_pr"),
        (parse_step, "::x"),
        (parse_human_identity, "https://login.acme.example"),
        (parse_date, "31/12/2026"),
    ],
)
def test_malformed_values_are_invalid_requests(parse: object, raw: str) -> None:
    """Malformed option values are invalid_request (exit 2), never a traceback."""
    assert callable(parse)
    with pytest.raises(InvalidRequest):
        parse(raw)

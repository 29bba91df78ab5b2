"""The CLI's error table and one-line error format."""

from __future__ import annotations

import pytest

from remit.cli.output import EXIT_CODE_BY_CODE, exit_code_for, format_error
from remit.errors import (
    AuditUnavailable,
    Conflict,
    CredentialRevoked,
    Denied,
    ErrorCode,
    FieldError,
    InternalError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RemitError,
    TaskNotActive,
    Unauthenticated,
    Unavailable,
    error_class_for,
)


def test_every_error_code_has_an_exit_code() -> None:
    """No ErrorCode can ship without a CLI exit code."""
    assert set(EXIT_CODE_BY_CODE) == set(ErrorCode)


def test_exit_codes_are_small_and_nonzero() -> None:
    """Every error exits between 1 and 7, so 0 always means success."""
    assert set(EXIT_CODE_BY_CODE.values()) <= set(range(1, 8))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InternalError(), 1),
        (InvalidRequest("bad"), 2),
        (Unauthenticated(), 3),
        (CredentialRevoked(), 3),
        (Denied(), 4),
        (NotFound(), 5),
        (Conflict(), 6),
        (TaskNotActive(), 6),
        (RateLimited(), 7),
        (Unavailable(), 7),
        (AuditUnavailable(), 7),
    ],
)
def test_exit_code_follows_the_error_family(error: RemitError, code: int) -> None:
    """Each family of errors exits with the code ARCHITECTURE.md §3 gives it."""
    assert exit_code_for(error) == code


def test_each_subclass_exits_like_its_family() -> None:
    """A subclass never exits differently from the class it refines (forbidden family 4, conflict 6, ...)."""
    for code in ErrorCode:
        cls = error_class_for(code)
        for base in cls.__mro__[1:]:
            if issubclass(base, RemitError) and base is not RemitError:
                assert EXIT_CODE_BY_CODE[code] == EXIT_CODE_BY_CODE[base.code], (code, base)


def test_error_prints_as_one_line_with_code_and_fields() -> None:
    """`error[code]: message; loc: msg` on a single line, even when messages contain new lines."""
    error = InvalidRequest(
        "2 invalid\nfields",
        errors=[
            FieldError(loc=("agents", 0, "review_by"), type="date", msg="not a date"),
            FieldError(loc=("name",), type="value_error", msg="too\nlong"),
        ],
    )
    line = format_error(error)
    assert line == "error[invalid_request]: 2 invalid fields; agents.0.review_by: not a date; name: too long"
    assert "\n" not in line


def test_single_field_error_is_not_repeated() -> None:
    """A field error whose text is the message itself is printed once."""
    assert format_error(InvalidRequest("must not be empty", field="reason")) == (
        "error[invalid_request]: must not be empty"
    )

"""Parse the CLI's compact option values (`30m`, `NAME:RISK`, `PATTERN:SENSITIVITY[:ENV]`, `TOOL:ACTION:RESOURCE`)."""

from __future__ import annotations

import datetime as dt
import re

from collections.abc import Sequence
from typing import Final, get_args

from remit.core.authorization.models import REQUEST_CONTEXT_TYPES
from remit.errors import InvalidRequest
from remit.wire.registry import (
    OidcIdentity,
    RiskClassName,
    SensitivityName,
    ToolActionIn,
    ToolResourceIn,
    WorkflowStepIn,
)

__all__ = [
    "RISK_CLASSES",
    "SENSITIVITIES",
    "format_duration",
    "parse_action",
    "parse_date",
    "parse_duration",
    "parse_facts",
    "parse_human_identity",
    "parse_resource",
    "parse_step",
]

RISK_CLASSES: Final = frozenset(get_args(RiskClassName))
SENSITIVITIES: Final = frozenset(get_args(SensitivityName))

_UNIT_SECONDS: Final = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)
_SECONDS: Final = re.compile(r"^\d{1,12}$", re.ASCII)
_MAX_DURATION_SECONDS: Final = 10 * 365 * 86_400  # far beyond any limit, but bounded before int() grows


def parse_duration(raw: str, *, field: str = "max_duration") -> int:
    """Seconds from `90`, `45s`, `30m`, `2h`, `1d` or a combination in that order (`1h30m`); must be positive."""
    text = raw.strip().lower()
    if _SECONDS.match(text):  # ASCII digits only: str.isdigit() also accepts '²', which int() refuses
        seconds = int(text)
    else:
        match = _DURATION.match(text) if len(text) <= 40 else None  # noqa: PLR2004 - bound the input
        if match is None or not any(match.groups()):
            msg = f"{raw!r} is not a duration such as 90s, 30m, 2h, 1d or 1h30m"
            raise InvalidRequest(msg, field=field)
        seconds = sum(int(n) * u for n, u in zip(match.groups(), _UNIT_SECONDS.values(), strict=True) if n)
    if not 0 < seconds <= _MAX_DURATION_SECONDS:
        msg = f"{raw!r} must be a positive duration"
        raise InvalidRequest(msg, field=field)
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest `1h30m` form of a number of seconds (inverse of parse_duration)."""
    parts: list[str] = []
    rest = seconds
    for unit, size in _UNIT_SECONDS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_date(raw: str, *, field: str = "review_by") -> dt.date:
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        msg = f"{raw!r} is not a date (YYYY-MM-DD)"
        raise InvalidRequest(msg, field=field) from None


def parse_action(raw: str) -> ToolActionIn:
    """`NAME:RISK`, e.g. `merge_pr:write`."""
    name, sep, risk = raw.rpartition(":")
    if not sep or risk not in RISK_CLASSES:
        msg = f"{raw!r} is not NAME:RISK with RISK one of {', '.join(sorted(RISK_CLASSES))}"
        raise InvalidRequest(msg, field="action")
    return ToolActionIn.model_validate({"name": name, "risk_class": risk})


def parse_resource(raw: str) -> ToolResourceIn:
    """`PATTERN:SENSITIVITY[:ENV]`; the pattern itself may contain `:` (`repo:acme/*:internal`)."""
    head, _, last = raw.rpartition(":")
    if last in SENSITIVITIES and head:
        return ToolResourceIn.model_validate({"pattern": head, "sensitivity": last})
    pattern, _, sensitivity = head.rpartition(":")
    if sensitivity in SENSITIVITIES and pattern and last:
        return ToolResourceIn.model_validate({"pattern": pattern, "sensitivity": sensitivity, "environment": last})
    msg = f"{raw!r} is not PATTERN:SENSITIVITY[:ENV] with SENSITIVITY one of {', '.join(sorted(SENSITIVITIES))}"
    raise InvalidRequest(msg, field="resource")


def parse_step(raw: str) -> WorkflowStepIn:
    """`TOOL:ACTION:RESOURCE`; the resource pattern may contain `:`."""
    tool, sep1, rest = raw.partition(":")
    action, sep2, resource = rest.partition(":")
    if not (sep1 and sep2 and tool and action and resource):
        msg = f"{raw!r} is not TOOL:ACTION:RESOURCE"
        raise InvalidRequest(msg, field="step")
    return WorkflowStepIn(tool=tool, action=action, resource=resource)


def parse_human_identity(raw: str) -> OidcIdentity:
    """`ISSUER#SUBJECT`: the OIDC identity a human owner signs in with."""
    issuer, sep, subject = raw.partition("#")
    if not (sep and issuer and subject):
        msg = f"{raw!r} is not ISSUER#SUBJECT"
        raise InvalidRequest(msg, field="human_identity")
    return OidcIdentity(issuer=issuer, subject=subject)


def parse_facts(raw: Sequence[str], *, field: str = "--fact") -> dict[str, str | int | bool]:
    """`NAME=VALUE` request facts, each typed: declared facts as declared, others as bool, integer or text.

    `amount=250` is an integer because `amount` is declared one; `urgent=true` is a boolean.
    """
    facts: dict[str, str | int | bool] = {}
    for item in raw:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            msg = f"a fact is NAME=VALUE, not {item!r}"
            raise InvalidRequest(msg, field=field)
        declared = REQUEST_CONTEXT_TYPES.get(name)
        if declared is int:
            try:
                facts[name] = int(value)
            except ValueError:
                raise InvalidRequest(f"fact {name} is an integer", field=field) from None
        elif declared is None and value in {"true", "false"}:
            facts[name] = value == "true"
        elif declared is None and value.lstrip("-").isdigit():
            facts[name] = int(value)
        else:
            facts[name] = value
    return facts

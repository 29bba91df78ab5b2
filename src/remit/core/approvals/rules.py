"""Who may approve what: rules per business function and risk class, over the documented risk-tier defaults.

Risk tiers (C16-C19): reads of public or internal data are standing (no approval); reads of
confidential or restricted data, writes and deploys take one approver; payments, exports and admin
actions take two distinct approvers. The approvers are the task's owner or a named approver group.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from remit.core.approvals.models import BREAK_GLASS_GROUP, OWNER_APPROVES
from remit.core.registry.models import RiskClass

__all__ = ["DEFAULT_APPROVERS", "DEFAULT_REQUIRED", "ApprovalRule", "ApprovalRules", "Window"]

DEFAULT_REQUIRED: Final[Mapping[RiskClass, int]] = MappingProxyType(
    {
        RiskClass.READ: 1,  # confidential or restricted reads; public and internal reads are standing
        RiskClass.WRITE: 1,
        RiskClass.DEPLOY: 1,
        RiskClass.PAYMENT: 2,
        RiskClass.EXPORT: 2,
        RiskClass.ADMIN: 2,
    }
)
DEFAULT_APPROVERS: Final = (OWNER_APPROVES, "approvers")
ANY: Final = "*"


@dataclass(frozen=True, slots=True)
class Window:
    """What an approval grants: `uses` (None: any within the TTL) for `ttl`."""

    uses: int | None
    ttl: dt.timedelta


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """For a function (id or name, `*` for any) and a risk class (`*` for any): who approves, how many.

    `required` None takes the risk tier's default.
    """

    function: str = ANY
    risk_class: str = ANY
    approvers: tuple[str, ...] = DEFAULT_APPROVERS
    required: int | None = None

    def matches(self, function_keys: Sequence[str], risk_class: RiskClass) -> bool:
        return (self.function == ANY or self.function in function_keys) and self.risk_class in {
            ANY,
            risk_class.value,
        }


@dataclass(frozen=True, slots=True)
class ApprovalRules:
    """The configured rules, most specific first; the tier defaults when none matches."""

    rules: tuple[ApprovalRule, ...] = ()
    required: Mapping[RiskClass, int] = field(default_factory=lambda: DEFAULT_REQUIRED)
    default_approvers: tuple[str, ...] = DEFAULT_APPROVERS

    def __post_init__(self) -> None:
        for rule in self.rules:
            if rule.required is not None and rule.required < 1:
                msg = "an approval rule needs at least one approver"
                raise ValueError(msg)
            if not rule.approvers:
                msg = "an approval rule names at least one approver group (or owner)"
                raise ValueError(msg)
        for approvers in (*(r.approvers for r in self.rules), self.default_approvers):
            # `owner` is the task's owner, never a group; `break-glass` is reserved for break-glass grants.
            if BREAK_GLASS_GROUP in approvers:
                msg = f"{BREAK_GLASS_GROUP!r} is reserved and is not an approver group"
                raise ValueError(msg)
        if any(n < 1 for n in self.required.values()):
            msg = "every risk class needs at least one approver"
            raise ValueError(msg)

    def rule_for(self, function_keys: Sequence[str], risk_class: RiskClass) -> tuple[tuple[str, ...], int]:
        """(approvers, how many distinct approvals) for a call of `risk_class` in the function."""

        def specificity(rule: ApprovalRule) -> int:
            return (rule.function != ANY) * 2 + (rule.risk_class != ANY)

        for rule in sorted(self.rules, key=specificity, reverse=True):
            if rule.matches(function_keys, risk_class):
                return rule.approvers, rule.required or self.required.get(risk_class, 1)
        return self.default_approvers, self.required.get(risk_class, 1)

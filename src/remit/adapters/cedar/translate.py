"""A `PolicyRequest` in Cedar's terms: the principal, action and resource uids, the entities and the context.

Entity ids travel in Cedar's JSON form (`{"type": ..., "id": ...}`), never spliced into policy
syntax, so any resource id, including quotes and new lines, is just data. References to entities
inside attributes and the context use the explicit `__entity` escape: without a schema at
evaluation time, a bare `{"type", "id"}` record would be read as a record, not an entity.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from remit.adapters.cedar.schema import action_id
from remit.core.authorization.models import REQUEST_CONTEXT_TYPES, PolicyRequest

__all__ = [
    "CONTEXT_ATTRIBUTES",
    "InvalidContext",
    "cedar_context",
    "cedar_entities",
    "cedar_request",
    "context_attributes",
    "entities_key",
    "resource_id",
]

# Cedar's Long is a signed 64-bit integer.
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_MAX_STRING: Final = 4096


class InvalidContext(ValueError):
    """A request fact is unknown, of the wrong type, or out of Cedar's range: the request is not well formed."""


def _uid(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "id": value}


def _ref(kind: str, value: str) -> dict[str, dict[str, str]]:
    return {"__entity": {"type": kind, "id": value}}


def resource_id(request: PolicyRequest) -> str:
    """`<tool>:<resource id>`: the same resource id under two tools is two resources."""
    return f"{request.tool.name}:{request.resource}"


def _datetime(moment: dt.datetime) -> dict[str, dict[str, str]]:
    utc = moment.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"
    return {"__extn": {"fn": "datetime", "arg": text}}


def _request_facts(raw: Mapping[str, str | int | bool]) -> dict[str, str | int | bool]:
    facts: dict[str, str | int | bool] = {}
    for name, value in raw.items():
        expected = REQUEST_CONTEXT_TYPES.get(name)
        if expected is None:
            msg = f"unknown request fact {name!r}"
            raise InvalidContext(msg)
        if type(value) is not expected:  # bool is an int in Python, never in Cedar
            msg = f"request fact {name!r} must be {expected.__name__}"
            raise InvalidContext(msg)
        if isinstance(value, int) and not _LONG_MIN <= value <= _LONG_MAX:
            msg = f"request fact {name!r} is outside a 64-bit integer"
            raise InvalidContext(msg)
        if isinstance(value, str) and len(value) > _MAX_STRING:
            msg = f"request fact {name!r} is longer than {_MAX_STRING} characters"
            raise InvalidContext(msg)
        facts[name] = value
    return facts


def _delegation_chain(request: PolicyRequest) -> list[str]:
    return list(request.delegation_chain)


# Each context attribute and how it is built; docs/policies.md describes each one.
_CONTEXT: Final[Mapping[str, Callable[[PolicyRequest], Any]]] = {
    "environment": lambda r: r.environment,
    "sensitivity": lambda r: r.sensitivity.label,
    "sensitivity_level": lambda r: int(r.sensitivity),
    "risk_class": lambda r: r.action.risk_class.value,
    "objective": lambda r: r.task.objective,
    "task": lambda r: _ref("Task", r.task.id),
    "delegation_chain": _delegation_chain,
    "delegation_depth": lambda r: r.task.depth,
    "now": lambda r: int(r.now.timestamp()),
    "time": lambda r: _datetime(r.now),
    "elevated": lambda r: r.elevated,
}
CONTEXT_ATTRIBUTES: Final = (*_CONTEXT, "request")


def cedar_context(request: PolicyRequest, attributes: Collection[str] | None = None) -> dict[str, Any]:
    """The context record policies read as `context.*`: every attribute, or only `attributes`.

    The request facts are checked whether or not a policy reads them: a request that is not well
    formed is refused the same way under any policy set.
    """
    facts = _request_facts(request.context)
    if attributes is None:
        context = {name: build(request) for name, build in _CONTEXT.items()}
        context["request"] = facts
        return context
    context = {name: build(request) for name, build in _CONTEXT.items() if name in attributes}
    if "request" in attributes:
        context["request"] = facts
    return context


def cedar_request(request: PolicyRequest, attributes: Collection[str] | None = None) -> dict[str, Any]:
    """Principal, action, resource and context (every attribute, or only `attributes`), as cedarpy takes them."""
    return {
        "principal": _uid("Agent", request.agent.id),
        "action": _uid("Action", action_id(request.tool.name, request.action.name)),
        "resource": _uid("Resource", resource_id(request)),
        "context": cedar_context(request, attributes),
    }


_CONTEXT_VAR: Final = {"Var": "context"}


def context_attributes(policies: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """The context attributes these policies (Cedar's JSON form) can read; None when one reads `context` whole.

    Cedar reads a context attribute only through `context.name`, `context["name"]` or `context has
    name`; a policy that uses `context` any other way (compares it, say) sees the whole record. An
    attribute no policy can read changes no answer, so it need not be built or sent. Should this
    miss a way of reading one, the policy reading it fails to evaluate and the decision is a deny.
    """
    found: set[str] = set()

    def visit(node: object) -> bool:  # False once the context is read whole
        if isinstance(node, dict):
            if node == _CONTEXT_VAR:
                return False
            for operator in (".", "has"):
                access = node.get(operator)
                if isinstance(access, dict) and access.get("left") == _CONTEXT_VAR:
                    attribute = access.get("attr")
                    if not isinstance(attribute, str):
                        return False
                    found.add(attribute)
                    return True
            return all(visit(value) for value in node.values())
        if isinstance(node, list):
            return all(visit(item) for item in node)
        return True

    if not all(visit(policy) for policy in policies):
        return None
    return frozenset(found)


def entities_key(request: PolicyRequest) -> tuple[object, ...]:
    """What the entities are built from, with revisions: any registry or task change gives another key."""
    agent, owner, function, tool, task = request.agent, request.owner, request.function, request.tool, request.task
    return (
        agent.id,
        agent.revision,
        owner.id,
        owner.revision,
        None if function is None else (function.id, function.revision),
        tool.id,
        tool.revision,
        request.action.name,
        request.action.risk_class,
        task.id,
        task.epoch,
        task.revision,
        request.resource,
        request.sensitivity,
        request.resource_environment,
    )


def cedar_entities(request: PolicyRequest) -> list[dict[str, Any]]:
    """Every entity a decision can reach: agent, owner, function, tool, resource, task and the action's group."""
    agent, owner, function, tool, task = request.agent, request.owner, request.function, request.tool, request.task
    agent_attrs: dict[str, Any] = {
        "name": agent.name,
        "owner": _ref("Owner", owner.id),
        "environments": sorted(agent.environments),
    }
    agent_parents: list[dict[str, str]] = []
    entities: list[dict[str, Any]] = [
        {"uid": _uid("Owner", owner.id), "attrs": {"name": owner.name, "email": owner.email}, "parents": []},
    ]
    if function is not None:
        # An agent without a function never reaches here (the guardrails refuse it); if one did,
        # a policy reading `principal.function` would fail, and a failing policy denies.
        agent_attrs["function"] = _ref("BusinessFunction", function.id)
        agent_parents.append(_uid("BusinessFunction", function.id))
        entities.append(
            {
                "uid": _uid("BusinessFunction", function.id),
                "attrs": {"name": function.name, "owner": _ref("Owner", function.owner_id)},
                "parents": [],
            }
        )
    group = request.action.risk_class.value
    entities += [
        {"uid": _uid("Agent", agent.id), "attrs": agent_attrs, "parents": agent_parents},
        {"uid": _uid("Tool", tool.name), "attrs": {"name": tool.name}, "parents": []},
        {
            "uid": _uid("Resource", resource_id(request)),
            "attrs": {
                "tool": _ref("Tool", tool.name),
                "id": request.resource,
                "sensitivity": request.sensitivity.label,
                "sensitivity_level": int(request.sensitivity),
                "environment": request.resource_environment or "",
            },
            "parents": [_uid("Tool", tool.name)],
        },
        {
            "uid": _uid("Task", task.id),
            "attrs": {
                "objective": task.objective,
                "workflow": task.workflow_ref,
                "workflow_name": task.workflow_ref.partition("@")[0],
                "depth": task.depth,
                "principal": task.principal or "",
                "agent": _ref("Agent", agent.id),
                "environment": task.environment,
            },
            "parents": [],
        },
        {
            "uid": _uid("Action", action_id(tool.name, request.action.name)),
            "attrs": {},
            "parents": [_uid("Action", group)],
        },
        {"uid": _uid("Action", group), "attrs": {}, "parents": []},
    ]
    return entities

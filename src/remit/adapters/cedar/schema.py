"""The Cedar schema generated from the registry, and validation of policy text against it.

Entity types mirror the registry (Agent, Owner, BusinessFunction, Tool, Resource, Task). Every
registered action is `Action::"<tool>:<action>"`, a member of the action group named for its risk
class (`Action::"deploy"`), so a policy can say `action in Action::"deploy"` and cover every tool.
The groups also apply to agents and resources themselves, so policies that name only groups
validate against any registry, even an empty one. A policy naming an unknown action, attribute or
type fails validation with Cedar's own message.
"""

from __future__ import annotations

import json
import re
import threading

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Final

import cedarpy

from remit.core.authorization.models import REQUEST_CONTEXT_TYPES
from remit.core.authorization.policies import PolicyDiagnostic, PolicySchema
from remit.core.registry.models import RiskClass, Tool

__all__ = [
    "CONTEXT_TYPE",
    "RISK_GROUPS",
    "CedarPolicyValidator",
    "action_id",
    "cedar_schema",
    "parse_policies",
]

RISK_GROUPS: Final[tuple[str, ...]] = tuple(r.value for r in RiskClass)
CONTEXT_TYPE: Final = "Context"
REQUEST_TYPE: Final = "RequestFacts"
# What an `@id` may hold: it becomes part of the policy id decisions report (`name@version/<id>`).
_ANNOTATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_POSITIONAL = re.compile(r"`(policy\d+)`")
_CEDAR_TYPE: Final[Mapping[type, str]] = {int: "Long", str: "String", bool: "Boolean"}
# Cedar reports some problems once per action the policy could apply to: keep a readable number.
MAX_DIAGNOSTICS: Final = 50


def action_id(tool: str, action: str) -> str:
    """The Cedar action id of a registered action: `<tool>:<action>` (names never contain `:`)."""
    return f"{tool}:{action}"


def _string() -> dict[str, Any]:
    return {"type": "String"}


def _long() -> dict[str, Any]:
    return {"type": "Long"}


def _entity(name: str) -> dict[str, Any]:
    return {"type": "Entity", "name": name}


def _record(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "Record", "attributes": dict(attributes)}


def _entity_types() -> dict[str, Any]:
    return {
        "Owner": {"shape": _record({"name": _string(), "email": _string()})},
        "BusinessFunction": {"shape": _record({"name": _string(), "owner": _entity("Owner")})},
        "Agent": {
            "memberOfTypes": ["BusinessFunction"],
            "shape": _record(
                {
                    "name": _string(),
                    "owner": _entity("Owner"),
                    "function": _entity("BusinessFunction"),
                    "environments": {"type": "Set", "element": _string()},
                }
            ),
        },
        "Tool": {"shape": _record({"name": _string()})},
        "Resource": {
            "memberOfTypes": ["Tool"],
            "shape": _record(
                {
                    "tool": _entity("Tool"),
                    "id": _string(),
                    "sensitivity": _string(),
                    "sensitivity_level": _long(),
                    "environment": _string(),
                }
            ),
        },
        "Task": {
            "shape": _record(
                {
                    "objective": _string(),
                    "workflow": _string(),
                    "workflow_name": _string(),
                    "depth": _long(),
                    "principal": _string(),
                    "agent": _entity("Agent"),
                    "environment": _string(),
                }
            )
        },
    }


def _common_types() -> dict[str, Any]:
    request = {name: {"type": _CEDAR_TYPE[kind], "required": False} for name, kind in REQUEST_CONTEXT_TYPES.items()}
    return {
        REQUEST_TYPE: _record(request),
        CONTEXT_TYPE: _record(
            {
                "environment": _string(),
                "sensitivity": _string(),
                "sensitivity_level": _long(),
                "risk_class": _string(),
                "objective": _string(),
                "task": _entity("Task"),
                "delegation_chain": {"type": "Set", "element": _string()},
                "delegation_depth": _long(),
                "now": _long(),
                "time": {"type": "Extension", "name": "datetime"},
                "elevated": {"type": "Boolean"},
                "request": {"type": REQUEST_TYPE},
            }
        ),
    }


def cedar_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """The Cedar JSON schema (empty namespace) for the registry's tools."""
    applies = {"principalTypes": ["Agent"], "resourceTypes": ["Resource"], "context": {"type": CONTEXT_TYPE}}
    actions: dict[str, Any] = {group: {"appliesTo": applies} for group in RISK_GROUPS}
    for tool in sorted(tools, key=lambda t: t.name):
        for action in tool.actions:
            actions[action_id(tool.name, action.name)] = {
                "memberOf": [{"id": action.risk_class.value}],
                "appliesTo": applies,
            }
    return {"": {"entityTypes": _entity_types(), "actions": actions, "commonTypes": _common_types()}}


def parse_policies(text: str) -> dict[str, Any]:
    """Cedar text → its JSON form (`staticPolicies`, `templates`); ValueError with Cedar's message on a syntax error."""
    parsed: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    return parsed


def _label(policy_id: str, policy: Mapping[str, Any]) -> str:
    annotation = policy.get("annotations", {}).get("id")
    return annotation if isinstance(annotation, str) and annotation else policy_id


class CedarPolicyValidator:
    """Validates policy text against the schema of the given tools; keeps a few parsed schemas."""

    def __init__(self, *, cached_schemas: int = 8) -> None:
        self._schemas: OrderedDict[str, cedarpy.Schema] = OrderedDict()
        self._size = cached_schemas
        self._lock = threading.Lock()

    def _schema(self, tools: Sequence[Tool]) -> tuple[cedarpy.Schema, dict[str, Any]]:
        document = cedar_schema(tools)
        key = json.dumps(document, sort_keys=True)
        with self._lock:
            found = self._schemas.get(key)
            if found is not None:
                self._schemas.move_to_end(key)
                return found, document
        handle = cedarpy.Schema.from_json_str(key)
        with self._lock:
            self._schemas[key] = handle
            while len(self._schemas) > self._size:
                self._schemas.popitem(last=False)
        return handle, document

    def schema(self, *, tools: Sequence[Tool]) -> PolicySchema:
        handle, document = self._schema(tools)
        # Cedar renders built-in types fully qualified (`__cedar::String`); we declare no type that
        # could shadow them, so the short names read better and mean the same.
        return PolicySchema(text=str(handle).replace("__cedar::", ""), json=document)

    def check(self, text: str, *, tools: Sequence[Tool]) -> tuple[PolicyDiagnostic, ...]:
        try:
            parsed = parse_policies(text)
        except ValueError as error:
            return (PolicyDiagnostic("", f"syntax error: {error}"),)
        labels, problems = _labels(parsed)
        if problems:
            return problems
        handle, _ = self._schema(tools)
        result = cedarpy.validate_policies(text, handle)
        if result.validation_passed:
            return ()
        found: list[PolicyDiagnostic] = []
        for failure in result.errors:
            message = _POSITIONAL.sub(lambda m: f"`{labels.get(m[1], m[1])}`", failure.error)
            diagnostic = PolicyDiagnostic(labels.get(failure.policy_id, failure.policy_id), message)
            if diagnostic not in found:
                found.append(diagnostic)
        if len(found) > MAX_DIAGNOSTICS:
            rest = len(found) - MAX_DIAGNOSTICS
            found = [*found[:MAX_DIAGNOSTICS], PolicyDiagnostic("", f"... and {rest} more")]
        return tuple(found)


def _labels(parsed: Mapping[str, Any]) -> tuple[dict[str, str], tuple[PolicyDiagnostic, ...]]:
    """Each policy's readable label (its `@id`, else its position), and what is wrong before schema validation."""
    static: dict[str, Any] = parsed.get("staticPolicies", {})
    problems = [
        PolicyDiagnostic(_label(pid, p), "templates (?principal, ?resource) are not supported; write the entity")
        for pid, p in parsed.get("templates", {}).items()
    ]
    if not static and not problems:
        return {}, (PolicyDiagnostic("", "the text holds no policy"),)
    labels: dict[str, str] = {}
    for pid, policy in static.items():
        label = _label(pid, policy)
        if label != pid and not _ANNOTATION_ID.match(label):
            msg = "an @id is 1-100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
            problems.append(PolicyDiagnostic(label, msg))
        if label in labels.values():
            problems.append(PolicyDiagnostic(label, "two policies share this @id; each must be unique"))
        labels[pid] = label
    return labels, tuple(problems)

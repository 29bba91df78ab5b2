"""Audit export: committed records as OCSF 1.8.0 events, one JSON object per line, to a file or stdout.

Class mapping (OCSF 1.8.0; see docs/audit.md):

* `credential.issued|delegated|exchanged`, `elevation.*`, `breakglass.used` → Authorize Session (3003),
  activity Assign Privileges (1);
* `attestation.*`, `*.authenticated`, `approver.login`, `operator.login` → Authentication (3002), Logon (1);
* `decision.*`, `tool.*` → API Activity (6003) with `actor.authorizations[]` for the decision;
* registry, task and credential lifecycle changes (`agent.registered`, `credential.revoked`, …) →
  Entity Management (3004), activity from the verb (Create, Update, Suspend, Disable, …);
* anything else → Base Event (0).

`metadata.correlation_uid` is the task id (C31). The chain link (`sequence`, `prev_hash`, `hash`)
travels in `unmapped.remit` until the 1.9 `record_integrity` profile is pinned. No raw token ever
leaves: values under keys that name a token, secret, password, key or assertion are replaced, and
any string shaped like a JWT is masked.
"""

from __future__ import annotations

import json
import re
import sys
import threading

from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final, Self

from remit import __version__
from remit.core.audit.models import ActorKind, SealedRecord

__all__ = ["OCSF_VERSION", "JsonLinesFileSink", "StreamSink", "to_ocsf"]

OCSF_VERSION: Final = "1.8.0"

_AUTHORIZE_SESSION: Final = 3003
_AUTHENTICATION: Final = 3002
_API_ACTIVITY: Final = 6003
_ENTITY_MANAGEMENT: Final = 3004
_BASE_EVENT: Final = 0

_OTHER: Final = 99
_REDACTED: Final = "[redacted]"
_SECRET_KEY = re.compile(r"(^|_)(token|secret|password|passphrase|private_key|assertion|authorization|cookie)s?($|_)")
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

# Entity Management (3004) activities by the event verb.
_ENTITY_ACTIVITY: Final[Mapping[str, int]] = {
    "registered": 1,
    "created": 1,
    "declared": 1,
    "started": 1,
    "added": 1,
    "changed": 3,
    "updated": 3,
    "approved": 3,
    "reviewed": 3,
    "deleted": 4,
    "removed": 4,
    "retired": 4,
    "enabled": 8,
    "disabled": 9,
    "revoked": 9,
    "activated": 10,
    "offboarded": 11,
    "deactivated": 11,
    "suspended": 12,
    "resumed": 13,
    "reactivated": 13,
}
_SUCCESS_OUTCOMES: Final = frozenset({"allow", "allowed", "success", "ok", "granted", "approved"})
_FAILURE_OUTCOMES: Final = frozenset({"deny", "denied", "failure", "failed", "error", "refused", "rejected"})


def _scrub(value: Any, key: str = "") -> Any:  # noqa: ANN401 - arbitrary JSON
    if key and _SECRET_KEY.search(key.lower()):
        return _REDACTED
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return _JWT_SHAPE.sub(_REDACTED, value)
    return value


def _class_of(event_type: str) -> tuple[int, int]:
    subject, _, verb = event_type.partition(".")
    if event_type in {"credential.issued", "credential.delegated", "credential.exchanged"} or subject in {
        "elevation",
        "breakglass",
    }:
        return _AUTHORIZE_SESSION, 1
    if subject == "attestation" or verb in {"authenticated", "login", "logged_in"}:
        return _AUTHENTICATION, 1
    if subject in {"decision", "tool"}:
        return _API_ACTIVITY, _OTHER
    if verb in _ENTITY_ACTIVITY or subject in {"owner", "agent", "function", "tool", "workflow", "grant", "task"}:
        return _ENTITY_MANAGEMENT, _ENTITY_ACTIVITY.get(verb, _OTHER)
    if subject == "credential":
        return _ENTITY_MANAGEMENT, _ENTITY_ACTIVITY.get(verb, _OTHER)
    return _BASE_EVENT, _OTHER


def _status(data: Mapping[str, Any]) -> int:
    outcome = str(data.get("outcome", data.get("effect", ""))).lower()
    if outcome in _SUCCESS_OUTCOMES:
        return 1
    if outcome in _FAILURE_OUTCOMES:
        return 2
    return 0


def _user(kind: ActorKind, uid: str) -> dict[str, Any]:
    # OCSF user.type_id: 1 User, 2 Admin, 3 System, 99 Other (an agent is a workload, not a person).
    type_id = {ActorKind.OPERATOR: 2, ActorKind.APPROVER: 1, ActorKind.SYSTEM: 3}.get(kind, _OTHER)
    user: dict[str, Any] = {"uid": uid, "type_id": type_id}
    if type_id == _OTHER:
        user["type"] = "AI Agent"
    return user


def to_ocsf(record: SealedRecord) -> dict[str, Any]:
    """One committed audit record as an OCSF 1.8.0 event."""
    event = record.event
    data = _scrub(event.data)
    class_uid, activity_id = _class_of(event.type)
    category_uid = class_uid // 1000
    severity_id = 4 if event.type.startswith("breakglass.") else 1  # 4 High, 1 Informational
    actor: dict[str, Any] = {"user": _user(event.actor.kind, event.actor.id)}
    ocsf: dict[str, Any] = {
        "category_uid": category_uid,
        "class_uid": class_uid,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": severity_id,
        "status_id": _status(data),
        "time": int(event.occurred_at.timestamp() * 1000),
        "message": event.type,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event.id,
            "log_name": "remit.audit",
            "product": {"name": "Remit", "vendor_name": "Remit", "version": __version__},
            **({"correlation_uid": event.task_id} if event.task_id else {}),
        },
        "actor": actor,
        "unmapped": {
            "remit": {
                "type": event.type,
                "schema": record.schema,
                "sequence": record.sequence,
                "prev_hash": record.prev_hash,
                "hash": record.hash,
                "subject": {"kind": event.subject_kind, "id": event.subject_id},
                "task_id": event.task_id,
                "agent_id": event.agent_id,
                "owner_id": event.owner_id,
                "function_id": event.function_id,
                "correlation_id": event.correlation_id,
                "data": data,
            }
        },
    }
    agent_user = {"uid": event.agent_id, "type_id": _OTHER, "type": "AI Agent"} if event.agent_id else None
    if class_uid == _AUTHORIZE_SESSION:
        ocsf["user"] = agent_user or actor["user"]
        privileges = data.get("scope") or data.get("privileges") or data.get("actions")
        if isinstance(privileges, str):
            privileges = privileges.split()
        if isinstance(privileges, list):
            ocsf["privileges"] = [str(p) for p in privileges]
        if isinstance(data.get("jti_hmac"), str):
            ocsf["session"] = {"uid": data["jti_hmac"]}
    elif class_uid == _AUTHENTICATION:
        ocsf["user"] = agent_user or actor["user"]
        ocsf["is_mfa"] = bool(data.get("mfa", False))
    elif class_uid == _API_ACTIVITY:
        ocsf["api"] = {
            "operation": str(data.get("action", event.type)),
            **({"service": {"name": str(data["tool"])}} if "tool" in data else {}),
        }
        ocsf["src_endpoint"] = {"uid": event.agent_id or event.actor.id}
        if "resource" in data:
            ocsf["resources"] = [{"uid": str(data["resource"])}]
        effect = data.get("effect", data.get("decision"))
        if effect is not None:
            reasons = data.get("reasons") or []
            actor["authorizations"] = [
                {
                    "decision": str(effect),
                    **({"policy": {"uid": str(reasons[0]), "name": ", ".join(map(str, reasons))}} if reasons else {}),
                }
            ]
    elif class_uid == _ENTITY_MANAGEMENT:
        ocsf["entity"] = {"uid": event.subject_id, "type": event.subject_kind}
    return ocsf


class StreamSink:
    """Writes OCSF JSON Lines to a text stream (stdout by default); one line per record, flushed."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def emit(self, record: SealedRecord) -> None:
        line = json.dumps(to_ocsf(record), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class JsonLinesFileSink:
    """Appends OCSF JSON Lines to a file (created 0600); close() when done."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._sink = StreamSink(self._file)

    def emit(self, record: SealedRecord) -> None:
        self._sink.emit(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

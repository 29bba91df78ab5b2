"""OCSF 1.8 export: class mapping, correlation by task, decisions in actor.authorizations, and no raw token ever."""

from __future__ import annotations

import datetime as dt
import io
import json
import stat

from pathlib import Path
from typing import Any

import pytest

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.adapters.sinks import JsonLinesFileSink, StreamSink, to_ocsf
from remit.core.audit.chain import seal
from remit.core.audit.models import GENESIS_HASH, ActorKind, AuditActor, AuditEvent, SealedRecord
from remit.errors import InvalidRequest

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ3RfMSJ9.c2lnbmF0dXJlLWJ5dGVz"


def record(kind: str, actor: ActorKind = ActorKind.AGENT, **data: Any) -> SealedRecord:
    return seal(
        GENESIS_HASH,
        1,
        AuditEvent(
            id="evt_1",
            type=kind,
            occurred_at=dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC),
            actor=AuditActor(actor, "agt_1"),
            subject_kind="task",
            subject_id="tsk_1",
            data=data,
            task_id="tsk_1",
            agent_id="agt_1",
        ),
    )


@pytest.mark.parametrize(
    ("kind", "class_uid", "activity_id"),
    [
        ("credential.issued", 3003, 1),
        ("elevation.granted", 3003, 1),
        ("attestation.verified", 3002, 1),
        ("approver.login", 3002, 1),
        ("decision.made", 6003, 99),
        ("tool.called", 6003, 99),
        ("agent.registered", 3004, 1),
        ("agent.suspended", 3004, 12),
        ("credential.revoked", 3004, 9),
        ("owner.offboarded", 3004, 11),
        ("something.odd", 0, 99),
    ],
)
def test_event_types_map_to_ocsf_classes(kind: str, class_uid: int, activity_id: int) -> None:
    """Each event type lands in its OCSF class with type_uid = class_uid * 100 + activity_id."""
    ocsf = to_ocsf(record(kind))
    assert (ocsf["class_uid"], ocsf["activity_id"]) == (class_uid, activity_id)
    assert ocsf["category_uid"] == class_uid // 1000
    assert ocsf["type_uid"] == class_uid * 100 + activity_id
    assert ocsf["metadata"]["version"] == "1.8.0"
    assert ocsf["metadata"]["correlation_uid"] == "tsk_1"


def test_decision_carries_authorizations_api_and_chain_link() -> None:
    """A decision is API Activity with actor.authorizations[], the api operation and the chain link."""
    sealed = record("decision.made", effect="deny", reasons=["guard.scope"], tool="github", action="merge_pr")
    ocsf = to_ocsf(sealed)
    assert ocsf["actor"]["authorizations"] == [
        {"decision": "deny", "policy": {"uid": "guard.scope", "name": "guard.scope"}}
    ]
    assert ocsf["api"] == {"operation": "merge_pr", "service": {"name": "github"}}
    assert ocsf["status_id"] == 2
    assert ocsf["unmapped"]["remit"]["hash"] == sealed.hash
    assert ocsf["time"] == 1768467600000


def test_issuance_names_privileges_and_the_jti_hmac_only() -> None:
    """Issuance is Authorize Session with privileges and the jti HMAC as session uid; no raw token."""
    ocsf = to_ocsf(record("credential.issued", scope="repo:read repo:write", jti_hmac="ab" * 32, access_token=TOKEN))
    assert ocsf["privileges"] == ["repo:read", "repo:write"]
    assert ocsf["session"] == {"uid": "ab" * 32}
    assert TOKEN not in json.dumps(ocsf)


def test_no_token_shaped_value_leaves_through_any_key() -> None:
    """A JWT-shaped string is masked even under an innocent key, nested in lists."""
    ocsf = to_ocsf(record("tool.called", note=f"Bearer {TOKEN}", nested=[{"client_secret": "s3cr3t"}]))
    text = json.dumps(ocsf)
    assert TOKEN not in text
    assert "s3cr3t" not in text


def test_stream_and_file_sinks_write_one_json_object_per_line(tmp_path: Path) -> None:
    """The stdout-style sink and the file sink (0600) each write one OCSF object per line."""
    stream = io.StringIO()
    StreamSink(stream).emit(record("decision.made", effect="allow"))
    path = tmp_path / "audit" / "ocsf.jsonl"
    with JsonLinesFileSink(path) as sink:
        sink.emit(record("decision.made", effect="allow"))
        sink.emit(record("tool.called"))
    assert json.loads(stream.getvalue())["class_uid"] == 6003
    assert [json.loads(line)["class_uid"] for line in path.read_text().splitlines()] == [6003, 6003]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_audit_key_file_is_private_and_reloads(tmp_path: Path) -> None:
    """The audit key is created 0600, reloads to the same key id, and a group-readable file is refused."""
    path = tmp_path / "audit.key"
    created = Ed25519CheckpointSigner.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reloaded = Ed25519CheckpointSigner.load_or_create(path)
    assert reloaded.key_id == created.key_id
    assert reloaded.verify(b"x", created.sign(b"x"))
    assert not reloaded.verify(b"y", created.sign(b"x"))
    assert not reloaded.verify(b"x", "not base64 !!")
    path.chmod(0o640)
    with pytest.raises(InvalidRequest):
        Ed25519CheckpointSigner.load_or_create(path)

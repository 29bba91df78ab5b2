"""Per-call decision throughput: in process beside the Cedar floor, and over HTTP beside a bare endpoint.

One run, three parts:

1. In process (one thread): `remit.decisions.decide()` — credential verification (cached), guardrails,
   Cedar on the compiled policy set, and the durable audit record — with p50/p99 µs; the same without
   the audit record; and the floor: `cedarpy.is_authorized` with the engine's own cached PolicySet and
   Entities handles on the same request (also with the whole context, every attribute, as the engine
   sent it before it pruned the context). Target: decide p50 without the record ≤ 1.5 times the floor.
2. Over HTTP: `remit serve` on loopback, `wrk` POSTing `/v1/decisions` at 8, 32 and 64 connections
   (each answer a durable, audited decision), beside a bare Litestar endpoint on the same server
   (uvicorn, one worker). Targets: ≥ 4,000 decisions/s; p99 ≤ 20 ms at 32 connections.

Usage: python bench/decide.py [--seconds 5] [--store sqlite|postgres] [--skip-http]
Needs `wrk` (Debian package) for part 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cedarpy
import httpx

from sqlalchemy import create_engine, text

from remit.adapters.cedar import CedarPolicyEngine, cedar_request
from remit.adapters.cedar.engine import build_entities
from remit.bootstrap import Remit, build, upgrade_database
from remit.core.authorization.models import AccessRequest, PolicyRequest, PolicyResult
from remit.core.registry.models import (
    RiskClass,
    Sensitivity,
    SpiffeId,
    ToolAction,
    ToolResource,
    WorkflowStep,
    WorkloadBinding,
)
from remit.core.tasks.models import parse_authorization_details
from remit.settings import Settings, StoreSettings

ISSUER = "https://remit.bench"
SPIFFE = "spiffe://bench.example/agent-0"
DETAILS = [{"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/*"]}]
NAIVE_STACK = 2_200  # decisions/s of a naive verify + denylist + Cedar + SQLite-audit stack, same machine class
TARGET_HTTP = 4_000
STORE: dict[str, str] = {}
PACK = Path(__file__).resolve().parents[1] / "examples" / "policies"

WRK_SCRIPT = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.body = os.getenv("WRK_BODY")
    wrk.headers["Content-Type"] = "application/json"
    function done(summary, latency, requests)
      io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, \\"errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
        summary.requests, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
    end
    """
)

BARE_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from litestar import Litestar, post

    @post("/v1/decisions", status_code=200)
    async def bare(data: dict) -> dict:
        return {"effect": "allow", "allowed": True, "reasons": []}

    uvicorn.run(Litestar([bare]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, float, float]:
    """Calls per second, p50 and p99 latency in µs, for `fn` run back to back for `seconds`."""
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    return (
        len(latencies) / sum(latencies),
        latencies[len(latencies) // 2] * 1e6,
        latencies[int(len(latencies) * 0.99)] * 1e6,
    )


def settings_for(home: Path, token: str) -> Settings:
    return Settings(
        home=home,
        operator_token=token,
        issuer=ISSUER,
        store=StoreSettings(url=STORE.get("url", ""), sqlite_synchronous=STORE.get("sync", "FULL")),
    )


def seed(remit: Remit) -> None:
    """An organisation, the default policy pack active, and one agent."""
    registry = remit.registry
    owner = registry.register_owner(name="Bench", email="bench@bench.example", actor="bench")
    function = registry.register_function(name="bench", description="bench", owner=owner.id, actor="bench")
    registry.register_tool(
        name="github",
        description="",
        actions=(ToolAction("read_file", RiskClass.READ), ToolAction("merge_pr", RiskClass.WRITE)),
        resources=(ToolResource("repo:acme/*", Sensitivity.INTERNAL),),
        actor="bench",
    )
    workflow = registry.create_workflow_version(
        name="wf",
        function=function.id,
        description="",
        steps=(WorkflowStep("github", "read_file", "repo:acme/*"),),
        max_duration=dt.timedelta(hours=1),
        actor="bench",
    )
    registry.approve_workflow(workflow.id, actor="bench")
    registry.register_agent(
        name="agent-0",
        binding=WorkloadBinding(spiffe_id=SpiffeId.parse(SPIFFE)),
        owner=owner.id,
        function=function.id,
        environments=["prod"],
        review_by=dt.date(2099, 1, 1),
        actor="bench",
    )
    activate_default_policies(remit)


def activate_default_policies(remit: Remit) -> None:
    """The default pack from examples/policies, as `remit serve --init` activates it."""
    for path in sorted(PACK.glob("*.cedar")):
        version = remit.policies.add(name=path.stem, text=path.read_text(encoding="utf-8"), actor="bench")
        remit.policies.activate(version.name, version.version, actor="bench")


def credential(remit: Remit) -> str:
    """A credential for the bench agent's task, issued through the service (the agent's evidence is trusted here)."""
    from remit.core.attestation.models import WorkloadIdentity  # noqa: PLC0415 - only the bench forges identities
    from remit.core.credentials.issuance import TaskDeclaration  # noqa: PLC0415

    identity = WorkloadIdentity.for_spiffe(
        SpiffeId.parse(SPIFFE), claims={}, jti=None, issued_at=None, expires_at=dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    )
    declaration = TaskDeclaration(
        workflow="wf@1",
        objective="bench",
        details=parse_authorization_details(DETAILS),
        expected_duration=dt.timedelta(minutes=30),
        environment="prod",
        audience="tool:github",
    )
    _, issued = remit.issuance.start_task(identity, declaration)
    return issued.token


def in_process(seconds: float) -> tuple[list[tuple[str, float, float, float]], Path, str]:
    home = Path(tempfile.mkdtemp(prefix="remit-bench-decide-"))
    token = "remit_op_" + secrets.token_urlsafe(16)
    settings = settings_for(home, token)
    upgrade_database(settings)
    remit = build(settings)
    remit.start()
    rows = []
    try:
        seed(remit)
        presented = credential(remit)
        request = AccessRequest(
            token=presented, audience="tool:github", tool="github", action="read_file", resource="repo:acme/app"
        )
        first = remit.decisions.decide(request)
        if not first.allowed:
            msg = f"the bench request must be allowed: {first}"
            raise SystemExit(msg)
        rows.append(
            ("decide (verify+guardrails+Cedar+durable audit)", *rate(lambda: remit.decisions.decide(request), seconds))
        )
        evaluate = remit.decisions._safely_evaluate  # noqa: SLF001 - the same path without the audit record
        rows.append(("decide without the audit record", *rate(lambda: evaluate(request), seconds)))
        floor, whole = cedar_floor(remit, request)
        rows.append(("floor: cedarpy is_authorized, cached handles", *rate(floor, seconds)))
        rows.append(("  the same with the whole context (every attribute)", *rate(whole, seconds)))
    finally:
        remit.close()
    return rows, home, presented


class _Capture:
    """Wraps the policy engine for one decision to capture the exact PolicyRequest the guardrails built."""

    def __init__(self, engine: CedarPolicyEngine) -> None:
        self.engine = engine
        self.seen: list[PolicyRequest] = []

    @property
    def version(self) -> int | None:
        return self.engine.version

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        self.seen.append(request)
        return self.engine.evaluate(request)


def cedar_floor(remit: Remit, request: AccessRequest) -> tuple[Callable[[], object], Callable[[], object]]:
    """`cedarpy.is_authorized` on the engine's compiled PolicySet and the request's Entities, twice.

    First the request as the engine sends it (only the context attributes the policies read), then the
    same with the whole context, as the engine sent it before it pruned the context.
    """
    capture = _Capture(remit.policy_engine)
    service: Any = remit.decisions
    service._policies = capture  # noqa: SLF001 - the bench looks inside to build the floor from the same inputs
    try:
        remit.decisions.decide(request)
    finally:
        service._policies = remit.policy_engine  # noqa: SLF001
    policy_request = capture.seen[-1]
    compiled = remit.policy_engine.compiled
    if compiled is None or compiled.handle is None:
        msg = "the default policy pack is not active"
        raise SystemExit(msg)
    handle = compiled.handle
    cedar = compiled.cedar_request(policy_request)  # exactly what the engine sends Cedar
    entities = build_entities(policy_request)
    if not cedarpy.is_authorized(cedar, handle, entities).allowed:
        msg = "the floor request must be allowed by the same policies"
        raise SystemExit(msg)
    whole = cedar_request(policy_request)
    return (lambda: cedarpy.is_authorized(cedar, handle, entities)), (
        lambda: cedarpy.is_authorized(whole, handle, entities)
    )


def wrk(url: str, body: str, connections: int, seconds: float, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), url],
        env={**os.environ, "WRK_BODY": body},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^JSON (.*)$", out, re.MULTILINE)
    if match is None:
        msg = f"wrk printed no summary:\n{out}"
        raise SystemExit(msg)
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = "the server exited before it was ready"
            raise SystemExit(msg)
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code in {200, 404}:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    msg = "the server did not start"
    raise SystemExit(msg)


def over_http(home: Path, presented: str, seconds: float) -> list[tuple[str, float, float, float, int]]:
    script = home / "post.lua"
    script.write_text(WRK_SCRIPT)
    rows: list[tuple[str, float, float, float, int]] = []
    port = 18700 + secrets.randbelow(1000)
    env = {
        **os.environ,
        "REMIT_HOME": str(home),
        "REMIT_ISSUER": ISSUER,
        "REMIT_STORE__URL": STORE.get("url", ""),
        "REMIT_STORE__SQLITE_SYNCHRONOUS": STORE.get("sync", "FULL"),
        "REMIT_OPERATOR_TOKEN": "remit_op_" + secrets.token_urlsafe(16),
    }
    body = json.dumps({"credential": presented, "tool": "github", "action": "read_file", "resource": "repo:acme/app"})
    server = subprocess.Popen(
        [sys.executable, "-m", "remit", "serve", "--no-init", "--no-seed", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        answer = httpx.post(f"{base}/v1/decisions", content=body, headers={"Content-Type": "application/json"}).json()
        if answer.get("effect") != "allow":
            msg = f"the bench decision must be allowed over HTTP: {answer}"
            raise SystemExit(msg)
        wrk(f"{base}/v1/decisions", body, 8, 1, script)  # warm up
        for connections in (8, 32, 64):
            result = wrk(f"{base}/v1/decisions", body, connections, seconds, script)
            rows.append(
                (
                    f"HTTP decisions, {connections} connections",
                    result["rps"],
                    result["p50_us"],
                    result["p99_us"],
                    result["non2xx"] + result["errors"],
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    bare_port = port + 1
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(bare_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    bare_base = f"http://127.0.0.1:{bare_port}"
    try:
        wait_ready(bare_base, bare)
        wrk(f"{bare_base}/v1/decisions", body, 8, 1, script)
        for connections in (8, 32, 64):
            result = wrk(f"{bare_base}/v1/decisions", body, connections, seconds, script)
            rows.append(
                (
                    f"bare Litestar endpoint, {connections} connections",
                    result["rps"],
                    result["p50_us"],
                    result["p99_us"],
                    result["non2xx"] + result["errors"],
                )
            )
    finally:
        bare.terminate()
        bare.wait(timeout=20)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    schema = None
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    if args.store == "postgres":
        schema = f"remit_bench_{secrets.token_hex(4)}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        STORE["url"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    home: Path | None = None
    try:
        rows, home, presented = in_process(args.seconds)
        use_http = not args.skip_http and shutil.which("wrk") is not None
        if not args.skip_http and not use_http:
            print("wrk is not installed (Debian package wrk): skipping the HTTP part", file=sys.stderr)
        http_rows = over_http(home, presented, args.seconds) if use_http else []
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        if schema is not None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    report(args.store, rows, http_rows)


def report(
    store: str, rows: list[tuple[str, float, float, float]], http_rows: list[tuple[str, float, float, float, int]]
) -> None:
    print(f"store: {store}")
    floor = next(r for r in rows if r[0].startswith("floor"))
    whole = next(r for r in rows if "whole context" in r[0])
    print(f"{'in process':52} {'ops/s':>9} {'p50 µs':>9} {'p99 µs':>9}  ratio")
    for name, ops, p50, p99 in rows:
        note = (
            ""
            if name.startswith(("floor", "  "))
            else f"p50 {p50 / floor[2]:.2f}× the floor, {p50 / whole[2]:.2f}× the whole-context one (target ≤ 1.5×)"
        )
        print(f"{name:52} {ops:9,.0f} {p50:9,.0f} {p99:9,.0f}  {note}")
    if not http_rows:
        return
    print(f"{'over HTTP (wrk -t1)':52} {'req/s':>9} {'p50 µs':>9} {'p99 µs':>9}  errors  ratio")
    bare = {name.rsplit(", ", 1)[1]: ops for name, ops, *_ in http_rows if name.startswith("bare")}
    for name, ops, p50, p99, errors in http_rows:
        note = ""
        if name.startswith("HTTP"):
            connections = name.rsplit(", ", 1)[1]
            note = f"{ops / bare[connections]:.2f}× bare, {ops / TARGET_HTTP:.2f}× target, {ops / NAIVE_STACK:.2f}× naive stack"
        print(f"{name:52} {ops:9,.0f} {p50:9,.0f} {p99:9,.0f}  {errors:6}  {note}")


if __name__ == "__main__":
    main()

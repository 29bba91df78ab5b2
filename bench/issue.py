"""Issuance, verification, introspection and revocation throughput, beside the raw signature floor.

Two parts, one run:

1. In process (one thread): attested + audited + durable issuance through the services, verification
   first-sight and cached, RFC 7009 revocation, each beside raw ES256 sign/verify from `cryptography`
   measured in the same run.
2. Over HTTP (a `remit serve` subprocess on loopback, SQLite WAL with full sync): N client threads
   POST /v1/tasks with fresh JWT-SVIDs, introspect, and revoke; OpenBao 2.7 figures measured on this
   machine class with durable raft storage and 8 connections are printed beside them for the ratio.
   The Python client costs about as much CPU per request as the server and shares its 2 cores, so
   with `--wrk` the same three run again from wrk (a C load generator, 1 thread, as the OpenBao
   reference was measured), each body pre-made and sent once: closer to the server alone, plus the
   same issuance through the RFC 8693 token exchange, and re-issue for one running task. The server's
   own CPU time per request is printed for those rows.

On a shared machine a run can differ from the next by a third (CPU time per request moves with it):
`--runs N` repeats the wrk issuance row on fresh evidence and reports the median run, as the OpenBao
reference is a median of three; `--openbao FILE` takes the reference from an OpenBao wrk run's JSON
(`cases.<name>.ops_s`) measured just before, instead of the recorded figures, so the ratio compares
like with like.

Usage: python bench/issue.py [--seconds 3] [--clients 8] [--store sqlite|sqlite-normal|postgres] [--wrk]
       [--runs 3] [--openbao FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, text

from remit.bootstrap import build, upgrade_database
from remit.core.attestation.models import Evidence
from remit.core.audit.models import AuditActor
from remit.core.credentials.issuance import TaskDeclaration
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
from remit.settings import AttestationSettings, Settings, SpiffeBundleSettings, StoreSettings

# OpenBao 2.7.2, integrated raft storage (fsync), wrk with 8 connections, same machine class
# (peers-bench REFERENCE.md, 2026-11-28). Absolute figures drift between runs; the ratio is the point.
OPENBAO_RAFT_8: dict[str, float] = {
    "issue (jwt_login)": 894,
    "token create": 839,
    "revoke": 559,
    "lookup/introspect": 9185,
}
OPENBAO_CASES = {
    "jwt_login": "issue (jwt_login)",
    "create": "token create",
    "revoke": "revoke",
    "lookup": "lookup/introspect",
}
OPENBAO_SOURCE = ["recorded 2026-11-28"]  # or the file given with --openbao
ISSUER = "https://remit.bench"
DOMAIN = "bench.example"


def each(fn: Callable[[str], object], items: list[str]) -> tuple[float, float, float]:
    """Calls per second and p50/p99 µs for `fn` once per item (for operations that consume their input)."""
    latencies = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    return (
        len(latencies) / sum(latencies),
        latencies[len(latencies) // 2] * 1e6,
        latencies[int(len(latencies) * 0.99)] * 1e6,
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
    total = sum(latencies)
    return len(latencies) / total, latencies[len(latencies) // 2] * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6


class Minter:
    """A stand-in trust domain that mints JWT-SVIDs."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")

    def bundle(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "use": "jwt-svid", "kid": "b1"}]}

    def svid(self, spiffe_id: str) -> str:
        now = int(time.time())
        claims = {"sub": spiffe_id, "aud": [ISSUER], "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode({"alg": "ES256", "kid": "b1", "typ": "JWT"}, claims, self.key)


STORE: dict[str, str] = {}  # set by main(): url and sqlite_synchronous


def settings_for(home: Path, bundle: Path, token: str) -> Settings:
    return Settings(
        home=home,
        operator_token=token,
        issuer=ISSUER,
        store=StoreSettings(url=STORE.get("url", ""), sqlite_synchronous=STORE.get("sync", "FULL")),
        attestation=AttestationSettings(spiffe_bundles=[SpiffeBundleSettings(trust_domain=DOMAIN, bundle=str(bundle))]),
    )


def seed(registry: Any, agents: int) -> None:  # noqa: ANN401 - RegistryService or an HTTP shim
    owner = registry.register_owner(name="Bench", email="bench@bench.example", actor="bench")
    function = registry.register_function(name="bench", description="bench", owner=owner.id, actor="bench")
    registry.register_tool(
        name="github",
        description="",
        actions=(ToolAction("read_file", RiskClass.READ),),
        resources=(ToolResource("repo:*", Sensitivity.INTERNAL),),
        actor="bench",
    )
    workflow = registry.create_workflow_version(
        name="wf",
        function=function.id,
        description="",
        steps=(WorkflowStep("github", "read_file", "repo:*"),),
        max_duration=dt.timedelta(hours=1),
        actor="bench",
    )
    registry.approve_workflow(workflow.id, actor="bench")
    for i in range(agents):
        registry.register_agent(
            name=f"agent-{i}",
            binding=WorkloadBinding(spiffe_id=SpiffeId.parse(f"spiffe://{DOMAIN}/agent-{i}")),
            owner=owner.id,
            function=function.id,
            environments=["prod"],
            review_by=dt.date(2099, 1, 1),
            actor="bench",
        )


DETAILS = [{"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/app"]}]


def in_process(seconds: float) -> list[tuple[str, float, float, float]]:
    home = Path(tempfile.mkdtemp(prefix="remit-bench-"))
    minter = Minter()
    bundle = home / "bundle.json"
    bundle.write_text(json.dumps(minter.bundle()))
    settings = settings_for(home, bundle, "remit_op_" + secrets.token_urlsafe(16))
    upgrade_database(settings)
    remit = build(settings)
    remit.start()
    rows = []
    try:
        seed(remit.registry, 1)
        spiffe = f"spiffe://{DOMAIN}/agent-0"
        declaration = TaskDeclaration(
            workflow="wf@1",
            objective="bench",
            details=parse_authorization_details(DETAILS),
            expected_duration=dt.timedelta(minutes=30),
            environment="prod",
            audience="tool:github",
        )
        issued: list[str] = []
        jtis: list[str] = []

        def issue() -> None:
            identity = remit.attestation.verify(Evidence.parse("jwt_svid", minter.svid(spiffe)))
            _, credential = remit.issuance.start_task(identity, declaration)
            issued.append(credential.token)
            jtis.append(credential.jti)

        rows.append(("issue (attest+record+sign, durable)", *rate(issue, seconds)))
        rows.append(("verify, first sight", *each(lambda t: remit.verifier.verify(t, audience="tool:github"), issued)))
        cached = issued[0]
        rows.append(("verify, cached", *rate(lambda: remit.verifier.verify(cached, audience="tool:github"), seconds)))
        system = AuditActor.system()
        rows.append(
            (
                "revoke (RFC 7009, durable, index updated)",
                *each(lambda j: remit.revocation.revoke_credential(j, reason="b", actor=system), jtis),
            )
        )
        private = ec.generate_private_key(ec.SECP256R1())
        public = private.public_key()
        message = b"x" * 400
        signature = private.sign(message, ec.ECDSA(hashes.SHA256()))
        rows.append(("floor: raw ES256 sign", *rate(lambda: private.sign(message, ec.ECDSA(hashes.SHA256())), 1.0)))
        rows.append(
            (
                "floor: raw ES256 verify",
                *rate(lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA256())), 1.0),
            )
        )
    finally:
        remit.close()
        shutil.rmtree(home, ignore_errors=True)
    return rows


def task_body(minter: Minter, spiffe_id: str) -> dict[str, Any]:
    """A `POST /v1/tasks` body with a fresh JWT-SVID for `spiffe_id`."""
    return {
        "evidence": {"kind": "jwt_svid", "token": minter.svid(spiffe_id)},
        "workflow": "wf@1",
        "objective": "bench",
        "authorization_details": DETAILS,
        "expected_duration_seconds": 600,
        "environment": "prod",
        "audience": "tool:github",
    }


def exchange_form(minter: Minter, spiffe_id: str) -> str:
    """A form-encoded RFC 8693 token exchange for the same task as `task_body`, with a fresh JWT-SVID."""
    task = {
        "type": "remit_task",
        "workflow": "wf@1",
        "objective": "bench",
        "expected_duration_seconds": 600,
        "environment": "prod",
    }
    return urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "subject_token": minter.svid(spiffe_id),
            "authorization_details": json.dumps([task, *DETAILS], separators=(",", ":")),
            "audience": "tool:github",
        }
    )


def over_http(
    seconds: float, clients: int, *, use_wrk: bool = False, runs: int = 1
) -> list[tuple[str, float, float, float]]:
    home = Path(tempfile.mkdtemp(prefix="remit-bench-http-"))
    minter = Minter()
    bundle = home / "bundle.json"
    bundle.write_text(json.dumps(minter.bundle()))
    token = "remit_op_" + secrets.token_urlsafe(16)
    settings = settings_for(home, bundle, token)
    upgrade_database(settings)
    remit = build(settings)
    seed(remit.registry, clients)
    remit.close()
    port = 18700 + secrets.randbelow(1000)
    env = {
        **os.environ,
        "REMIT_HOME": str(home),
        "REMIT_OPERATOR_TOKEN": token,
        "REMIT_ISSUER": ISSUER,
        "REMIT_SERVER__PORT": str(port),
        "REMIT_STORE__URL": STORE.get("url", ""),
        "REMIT_STORE__SQLITE_SYNCHRONOUS": STORE.get("sync", "FULL"),
        "REMIT_ATTESTATION__SPIFFE_BUNDLES": json.dumps([{"trust_domain": DOMAIN, "bundle": str(bundle)}]),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "remit", "serve", "--no-init", "--no-seed", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        tokens: list[str] = []
        lock = threading.Lock()

        def issue(client: httpx.Client, i: int) -> None:
            response = client.post("/v1/tasks", json=task_body(minter, f"spiffe://{DOMAIN}/agent-{i}"))
            response.raise_for_status()
            with lock:
                tokens.append(response.json()["credential"]["access_token"])

        rows.append((f"HTTP issue, {clients} clients", *load(base, clients, seconds, issue)))
        auth = {"Authorization": f"Bearer {token}"}
        pool = list(tokens)

        def introspect(client: httpx.Client, i: int) -> None:
            client.post("/oauth2/introspect", data={"token": pool[i % len(pool)]}, headers=auth).raise_for_status()

        rows.append((f"HTTP introspect, {clients} clients", *load(base, clients, seconds, introspect)))
        revocable = iter(list(tokens))

        def revoke(client: httpx.Client, _i: int) -> None:
            with lock:
                presented = next(revocable, None)
            if presented is not None:
                client.post("/oauth2/revoke", data={"token": presented}).raise_for_status()

        rows.append((f"HTTP revoke, {clients} clients", *load(base, clients, min(seconds, 1.5), revoke)))
        if use_wrk:
            rows += with_wrk(Served(base, home, server.pid, token, seconds, clients, runs), minter)
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)
    return rows


WRK_SCRIPT = Path(__file__).with_name("issue_wrk.lua")


@dataclass(frozen=True, slots=True)
class Served:
    """The running server wrk loads."""

    base: str
    home: Path
    pid: int
    token: str
    seconds: float
    clients: int
    runs: int = 1


def with_wrk(served: Served, minter: Minter) -> list[tuple[str, float, float, float]]:
    """Issue, introspect and revoke from wrk, every body made beforehand."""

    def fresh_bodies(run: int) -> Path:
        bodies = served.home / f"wrk-issue-{run}"
        with bodies.open("w") as out:
            for i in range(int(served.seconds * 3000)):  # more than the server can take in `seconds`
                body = task_body(minter, f"spiffe://{DOMAIN}/agent-{i % served.clients}")
                out.write(json.dumps(body, separators=(",", ":")) + "\n")
        return bodies

    issued = served.home / "wrk-tokens"
    conns = f"{served.clients} conns"
    name = f"wrk issue, {conns}"

    def one_run(run: int) -> tuple[tuple[str, float, float, float], float]:
        row = wrk_row(served, name, "/v1/tasks", fresh_bodies(run), tokens_out=issued)
        return row, SERVER_CPU[name]

    runs = [one_run(run) for run in range(served.runs)]
    runs.sort(key=lambda r: r[0][1])
    median, SERVER_CPU[name] = runs[len(runs) // 2]
    if served.runs > 1:
        RUNS[name] = [r[0][1] for r in runs]
    rows = [median]
    # The same issuance through the RFC 8693 door, as a standard OAuth client sends it (form-encoded).
    exchanges = served.home / "wrk-exchange"
    with exchanges.open("w") as out:
        for i in range(int(served.seconds * 3000)):
            out.write(exchange_form(minter, f"spiffe://{DOMAIN}/agent-{i % served.clients}") + "\n")
    rows.append(wrk_row(served, f"wrk token exchange, {conns}", "/oauth2/token", exchanges, tokens_out=issued))
    # Re-issue for one running task (as an SDK refresh or a delegation does), each with fresh evidence.
    spiffe_id = f"spiffe://{DOMAIN}/agent-0"
    started = httpx.post(f"{served.base}/v1/tasks", json=task_body(minter, spiffe_id), timeout=30)
    started.raise_for_status()
    reissues = served.home / "wrk-reissue"
    with reissues.open("w") as out:
        for _ in range(int(served.seconds * 3000)):
            out.write(json.dumps({"evidence": {"kind": "jwt_svid", "token": minter.svid(spiffe_id)}}) + "\n")
    path = f"/v1/tasks/{started.json()['task']['id']}/credentials"
    rows.append(wrk_row(served, f"wrk re-issue, {conns}", path, reissues))
    forms = served.home / "wrk-forms"
    forms.write_text("".join(f"token={t}\n" for t in issued.read_text().split()))
    rows.append(wrk_row(served, f"wrk introspect, {conns}", "/oauth2/introspect", forms, auth=served.token))
    # Each token revoked once: a second revocation of the same one is cheaper and would flatter the figure.
    rows.append(wrk_row(served, f"wrk revoke, {conns}", "/oauth2/revoke", forms, once=True))
    return rows


SERVER_CPU: dict[str, float] = {}  # row name → server CPU µs per request
RUNS: dict[str, list[float]] = {}  # row name → ops/s of every run, when repeated


def wrk_row(  # noqa: PLR0913 - one wrk run's particulars
    served: Served,
    name: str,
    path: str,
    bodies: Path,
    *,
    tokens_out: Path | None = None,
    auth: str | None = None,
    once: bool = False,
) -> tuple[str, float, float, float]:
    env = {**os.environ, "WRK_BODIES": str(bodies), "WRK_PATH": path, "WRK_ONCE": "1" if once else "0"}
    if path.startswith("/oauth2/"):
        env["WRK_FORM"] = "1"
    if tokens_out is not None:
        env["WRK_TOKENS_OUT"] = str(tokens_out)
    if auth is not None:
        env["WRK_AUTH"] = f"Bearer {auth}"
    before = cpu_seconds(served.pid)
    duration = f"-d{max(1, round(served.seconds))}s"
    command = ["wrk", "-t1", f"-c{served.clients}", duration, "--latency", "-s", str(WRK_SCRIPT), served.base + path]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    used = cpu_seconds(served.pid) - before
    line = next(x for x in finished.stdout.splitlines() if x.startswith("JSON "))
    result = json.loads(line[5:])
    if result["non2xx"] or result["errors"]:
        print(f"{name}: {result['non2xx']} non-2xx, {result['errors']} socket errors", file=sys.stderr)
    SERVER_CPU[name] = used / max(1, result["requests"]) * 1e6
    return name, result["requests"] / (result["duration_us"] / 1e6), result["p50_us"], result["p99_us"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    base: str, clients: int, seconds: float, call: Callable[[httpx.Client, int], None]
) -> tuple[float, float, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        local = []
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                call(client, i)
                local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return len(latencies) / elapsed, statistics.median(latencies) * 1e6, latencies[int(len(latencies) * 0.99)] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--wrk", action="store_true", help="also load the server from wrk (needs wrk on PATH)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the wrk issuance row; report the median run")
    parser.add_argument("--openbao", type=Path, help="JSON of an OpenBao wrk run (cases.<name>.ops_s) for the ratios")
    parser.add_argument(
        "--store",
        choices=["sqlite", "sqlite-normal", "postgres"],
        default="sqlite",
        help="sqlite: WAL, fsync per commit (default); sqlite-normal: fsync at checkpoints; postgres: 127.0.0.1:5432/test",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.openbao is not None:
        use_reference(args.openbao)
    schema = None
    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    if args.store == "sqlite-normal":
        STORE["sync"] = "NORMAL"
    elif args.store == "postgres":
        schema = f"remit_bench_{secrets.token_hex(4)}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        STORE["url"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    try:
        rows = in_process(args.seconds)
        if schema is not None:
            # A second, empty schema for the HTTP part, as the SQLite runs get a new file.
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        if not args.skip_http:
            use_wrk = args.wrk and shutil.which("wrk") is not None
            rows += over_http(args.seconds, args.clients, use_wrk=use_wrk, runs=args.runs)
    finally:
        if schema is not None:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    print(f"store: {args.store}")
    report(rows)


def use_reference(path: Path) -> None:
    """Take OpenBao's figures from a wrk run's JSON (`cases.<name>.ops_s`) instead of the recorded ones."""
    cases = json.loads(path.read_text())["cases"]
    for case, name in OPENBAO_CASES.items():
        if case in cases:
            OPENBAO_RAFT_8[name] = float(cases[case]["ops_s"])
    OPENBAO_SOURCE[0] = f"from {path.name}"


def report(rows: list[tuple[str, float, float, float]]) -> None:
    floor_verify = next(r[1] for r in rows if r[0] == "floor: raw ES256 verify")
    floor_sign = next(r[1] for r in rows if r[0] == "floor: raw ES256 sign")
    print(f"{'operation':48} {'ops/s':>9} {'p50 µs':>9} {'p99 µs':>9}  ratio")
    reference = OPENBAO_SOURCE[0]
    for name, ops, p50, p99 in rows:
        note = ""
        if name.startswith("verify"):
            note = f"{ops / floor_verify:.2f}× raw verify"
        elif name.startswith("issue"):
            note = f"{ops / floor_sign:.3f}× raw sign"
        elif name.startswith(("HTTP issue", "wrk issue", "wrk token exchange", "wrk re-issue")):
            login = OPENBAO_RAFT_8["issue (jwt_login)"]
            note = f"{ops / login:.2f}× OpenBao jwt_login (raft, 8 conns: {login:,.0f}/s, {reference})"
        elif name.startswith(("HTTP revoke", "wrk revoke")):
            revoke = OPENBAO_RAFT_8["revoke"]
            note = f"{ops / revoke:.2f}× OpenBao revoke (raft, 8 conns: {revoke:,.0f}/s, {reference})"
        elif name.startswith(("HTTP introspect", "wrk introspect")):
            lookup = OPENBAO_RAFT_8["lookup/introspect"]
            note = f"{ops / lookup:.2f}× OpenBao lookup (raft, 8 conns: {lookup:,.0f}/s, {reference})"
        if name in SERVER_CPU:
            note += f"; server CPU {SERVER_CPU[name]:,.0f} µs/req"
        if name in RUNS:
            note += "; median of " + " / ".join(f"{r:,.0f}" for r in RUNS[name])
        print(f"{name:48} {ops:9,.0f} {p50:9,.0f} {p99:9,.0f}  {note}")


if __name__ == "__main__":
    main()

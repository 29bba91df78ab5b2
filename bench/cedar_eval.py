"""Cost of the Cedar step of a decision: `CedarPolicyEngine.evaluate` beside plain cedarpy with cached handles.

Run: `.venv/bin/python bench/cedar_eval.py [--seconds 2] [--requests 64]` (about 15 s). The policies are the default
pack (`examples/policies/`), the registry the example organisation's tools plus 50 more, and the requests cycle over
`--requests` distinct (agent, task, resource) combinations, so the entity cache is warm as in steady traffic.

It prints p50 and p99 in microseconds for:

- floor: `cedarpy.is_authorized(request, policy_set, entities)` with the engine's own compiled `PolicySet` handle, a
  pre-built `Entities` handle and a pre-built request dict (nothing parsed or built per call);
- engine: `CedarPolicyEngine.evaluate(PolicyRequest)` (context built per call, entity cache lookup, result mapping);
- engine, cold entities: the same with the entity cache missing every time (a registry change or a new task);
- text per call: the policies passed as text and the entities as JSON on every call (what compiling once avoids);

and the ratio of each to the floor (target for the engine: p50 at most 1.5x the floor). Figures are noisy on a shared
machine; run it alone for numbers to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cedarpy

from remit.adapters.cedar import CedarPolicyEngine, cedar_entities, cedar_request
from remit.adapters.cedar.engine import build_entities
from remit.core.authorization.models import PolicyRequest
from remit.core.authorization.policies import ActivePolicySet, PolicyVersion
from remit.core.registry.models import (
    Agent,
    AgentStatus,
    BusinessFunction,
    Owner,
    OwnerStatus,
    RiskClass,
    Sensitivity,
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    WorkloadBinding,
)
from remit.core.tasks.models import AuthorizationDetail, Task

PACK = Path(__file__).resolve().parents[1] / "examples" / "policies"
NOW = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
TARGET_RATIO = 1.5


class _Unused:
    """The engine's policy source: never read here, the set is loaded directly."""

    def generation(self) -> int:
        raise NotImplementedError

    def active_set(self) -> ActivePolicySet:
        raise NotImplementedError


def _tool(name: str, actions: Sequence[tuple[str, RiskClass]], pattern: str, sensitivity: Sensitivity) -> Tool:
    return Tool(
        id=f"tool_{name}",
        name=name,
        description="",
        actions=tuple(ToolAction(a, r) for a, r in actions),
        resources=(ToolResource(pattern, sensitivity),),
        created_at=NOW,
        updated_at=NOW,
    )


def requests(count: int) -> list[PolicyRequest]:
    """`count` distinct requests over several agents, tasks, tools and resources, all allowed by the default pack."""
    owner = Owner(
        id="own_1", name="Grace", email="grace@acme.example", status=OwnerStatus.ACTIVE, created_at=NOW, updated_at=NOW
    )
    function = BusinessFunction(
        id="fn_1", name="release", description="", owner_id=owner.id, created_at=NOW, updated_at=NOW
    )
    tools = [
        _tool("github", [("read_repo", RiskClass.READ), ("merge_pr", RiskClass.WRITE)], "repo:acme/*", Sensitivity.INTERNAL),
        _tool("stripe", [("list_payouts", RiskClass.READ), ("refund", RiskClass.PAYMENT)], "account:*", Sensitivity.CONFIDENTIAL),
        _tool("warehouse", [("query", RiskClass.READ), ("export_table", RiskClass.EXPORT)], "dataset:*", Sensitivity.CONFIDENTIAL),
    ]  # fmt: skip
    context_of: dict[str, dict[str, str | int | bool]] = {
        "refund": {"amount": 12_000, "currency": "EUR"},
        "export_table": {"record_count": 500},
    }
    built = []
    for i in range(count):
        agent = Agent(
            id=f"agt_{i % 8}",
            name=f"bot-{i % 8}",
            binding=WorkloadBinding(spiffe_id=SpiffeId.parse(f"spiffe://acme.example/agents/bot-{i % 8}")),
            owner_id=owner.id,
            function_id=function.id,
            environments=frozenset({"prod"}),
            status=AgentStatus.ACTIVE,
            review_by=dt.date(2027, 1, 1),
            created_at=NOW,
            updated_at=NOW,
        )
        tool = tools[i % len(tools)]
        action = tool.actions[(i // len(tools)) % len(tool.actions)]
        task = Task(
            id=f"tsk_{i % 16}",
            agent_id=agent.id,
            owner_id=owner.id,
            function_id=function.id,
            workflow_id="wf_1",
            workflow_ref="ship-release@3",
            objective="Ship release 1.2.3 and reconcile its invoices",
            details=(AuthorizationDetail(tool.name, (action.name,), (tool.resources[0].pattern,)),),
            environment="prod",
            audience=f"tool:{tool.name}",
            created_at=NOW,
            deadline=NOW + dt.timedelta(hours=1),
        )
        built.append(
            PolicyRequest(
                agent=agent,
                owner=owner,
                function=function,
                tool=tool,
                action=action,
                resource=f"{tool.resources[0].pattern.rstrip('*')}item-{i}",
                sensitivity=tool.resources[0].sensitivity,
                resource_environment=None,
                task=task,
                environment="prod",
                delegation_chain=(),
                now=NOW,
                elevated=False,
                context=context_of.get(action.name, {}),
            )
        )
    return built


def active_pack() -> ActivePolicySet:
    versions = tuple(
        PolicyVersion(
            id=f"pol_{p.stem}",
            name=p.stem,
            version=1,
            text=p.read_text(encoding="utf-8"),
            sha256="",
            description="",
            created_by="bench",
            created_at=NOW,
        )
        for p in sorted(PACK.glob("*.cedar"))
    )
    return ActivePolicySet(generation=1, versions=versions)


def sample(call: Callable[[int], object], seconds: float) -> list[float]:
    """Microseconds per call of call(i), i counting up, for about `seconds`."""
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        for _ in range(100):
            start = time.perf_counter_ns()
            call(i)
            timings.append((time.perf_counter_ns() - start) / 1000)
            i += 1
    return timings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per case")
    parser.add_argument("--requests", type=int, default=64, help="distinct requests cycled over")
    args = parser.parse_args()

    active = active_pack()
    engine = CedarPolicyEngine(_Unused(), entity_cache_size=4096)
    compiled = engine.load(active)
    handle = compiled.handle
    if handle is None:
        raise SystemExit(f"the default pack does not compile: {compiled.problem}")
    cases = requests(args.requests)
    for request in cases:  # every request is allowed: the measured path is the full one
        result = engine.evaluate(request)
        if not result.allowed:
            raise SystemExit(f"a bench request is denied: {result}")

    prebuilt = [(cedar_request(r), build_entities(r)) for r in cases]
    text = "\n".join(v.text for v in active.versions)
    entities_json = [json.dumps(cedar_entities(r)) for r in cases]
    n = len(cases)

    def floor(i: int) -> object:
        request, entities = prebuilt[i % n]
        return cedarpy.is_authorized(request, handle, entities)

    def evaluate(i: int) -> object:
        return engine.evaluate(cases[i % n])

    def cold(i: int) -> object:
        request = cases[i % n]
        # A new task revision each call: the cache key never repeats, so entities are built every time.
        return engine.evaluate(replace(request, task=replace(request.task, revision=i + 2)))

    def as_text(i: int) -> object:
        return cedarpy.is_authorized(prebuilt[i % n][0], text, entities_json[i % n])

    # Warm up, then interleave the two main cases so background load hits both alike.
    sample(floor, 0.3)
    sample(evaluate, 0.3)
    floor_t: list[float] = []
    engine_t: list[float] = []
    for _ in range(4):
        floor_t += sample(floor, args.seconds / 4)
        engine_t += sample(evaluate, args.seconds / 4)
    results = {
        "floor (cached handles)": floor_t,
        "engine.evaluate": engine_t,
        "engine.evaluate, cold entities": sample(cold, args.seconds / 2),
        "text per call": sample(as_text, args.seconds / 2),
    }
    base = statistics.median(floor_t)
    print(f"{len(active.versions)} policy files, {len(compiled.policy_ids)} policies, {n} distinct requests")
    print(f"{'case':<32} {'p50 us':>8} {'p99 us':>8} {'p50 ratio':>10}")
    for name, values in results.items():
        p50 = statistics.median(values)
        print(f"{name:<32} {p50:8.1f} {percentile(values, 99):8.1f} {p50 / base:9.2f}x")
    ratio = statistics.median(engine_t) / base
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"engine p50 / floor p50 = {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    print(f"entity cache: {engine.entities.hits} hits, {engine.entities.misses} misses, {len(engine.entities)} held")


if __name__ == "__main__":
    main()

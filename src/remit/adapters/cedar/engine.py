"""The policy engine: the active policy set compiled once per generation, entities cached, Cedar per call.

Compiling: each active version's text is parsed into Cedar's JSON form and every policy is given the
id `<name>@<version>/<@id or position>`, so Cedar's diagnostics (the determining policies and any
evaluation error) name the policy a human wrote. The result is one `cedarpy.PolicySet` handle,
swapped in with a single reference assignment: a decision sees the old set or the new one, never a
mixture.

Evaluating: allowed only when a permit matches, no forbid matches, and no policy failed to
evaluate. Cedar itself skips a policy that errors, which for a `forbid` would allow what its author
meant to refuse; here any evaluation error denies (fail closed).

Reloading: `refresh()` compares the stored generation with the compiled one (one indexed read) and
recompiles only when it moved; the process that activated calls it at once, and a background poll
catches changes other replicas made. Decisions never read the database (except the very first one,
if nothing was loaded yet).
"""

from __future__ import annotations

import json
import logging
import threading
import time

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import cedarpy
import msgspec

from remit.adapters.cedar.schema import parse_policies
from remit.adapters.cedar.translate import (
    InvalidContext,
    cedar_entities,
    cedar_request,
    context_attributes,
    entities_key,
)
from remit.core.authorization.models import PolicyRequest, PolicyResult
from remit.core.authorization.policies import ActivePolicySet, PolicySetChanged
from remit.errors import RemitError

__all__ = [
    "ActivePolicySource",
    "CedarPolicyEngine",
    "CompiledPolicies",
    "EntityCache",
    "build_entities",
    "compile_policies",
]

_log = logging.getLogger(__name__)

DEFAULT_ENTITY_CACHE: Final = 4096
NO_POLICY_SET: Final = "no policy set is active"
LAZY_RETRY_SECONDS: Final = 1.0


class ActivePolicySource(Protocol):
    """Where the active set comes from (PolicyService satisfies it)."""

    def generation(self) -> int: ...
    def active_set(self) -> ActivePolicySet: ...


class EntityCache:
    """A bounded LRU of parsed entity handles, keyed by the revisions they were built from.

    A registry or task change gives a new key, so a stale handle is never found again; it just ages
    out. Thread-safe: the lock covers only the dictionary, never the building.
    """

    def __init__(self, maxsize: int = DEFAULT_ENTITY_CACHE) -> None:
        if maxsize < 1:
            msg = "the entity cache holds at least one entry"
            raise ValueError(msg)
        self._entries: OrderedDict[Hashable, cedarpy.Entities] = OrderedDict()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, build: Callable[[], cedarpy.Entities]) -> cedarpy.Entities:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        built = build()
        with self._lock:
            self._entries[key] = built
            if len(self._entries) > self._maxsize:
                self._entries.popitem(last=False)
        return built

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def build_entities(request: PolicyRequest) -> cedarpy.Entities:
    """Parse the entities of one request into a reusable handle (what the cache stores)."""
    return cedarpy.Entities.from_json_str(json.dumps(cedar_entities(request)))


@dataclass(frozen=True, slots=True)
class CompiledPolicies:
    """One generation's policy set, parsed once: `handle` is None when nothing is active or it failed to compile."""

    generation: int
    refs: tuple[str, ...]
    policy_ids: tuple[str, ...]
    handle: cedarpy.PolicySet | None
    problem: str | None = None
    # The context attributes some policy can read (None: all); the others are neither built nor sent.
    context: frozenset[str] | None = None

    @property
    def version(self) -> int | None:
        """The generation when a set is loaded; None when nothing is active."""
        return self.generation if self.refs else None

    def cedar_request(self, request: PolicyRequest) -> dict[str, Any]:
        """The request exactly as Cedar gets it: the context with only what these policies read, as JSON text.

        Raises InvalidContext for request facts that are not well formed.
        """
        cedar = cedar_request(request, self.context)
        # As text, so cedarpy does not copy and re-encode it with the slower standard encoder.
        cedar["context"] = msgspec.json.encode(cedar["context"]).decode()
        return cedar

    def evaluate(self, request: PolicyRequest, entities: Callable[[PolicyRequest], cedarpy.Entities]) -> PolicyResult:
        """Cedar's answer for one request; never raises (a failure is a deny with its reason in `errors`)."""
        if self.handle is None:
            return PolicyResult(allowed=False, errors=(self.problem or NO_POLICY_SET,), policy_version=self.version)
        try:
            result = cedarpy.is_authorized(self.cedar_request(request), self.handle, entities(request))
        except InvalidContext as error:
            return PolicyResult(
                allowed=False, errors=(f"invalid request context: {error}",), policy_version=self.version
            )
        except Exception as error:  # noqa: BLE001 - a failure on the decision path denies, never allows or raises
            _log.exception("policy evaluation failed")
            return PolicyResult(
                allowed=False,
                errors=(f"policy evaluation failed ({type(error).__name__})",),
                policy_version=self.version,
            )
        # Cedar gives its reasons as a set, in no fixed order: sorted, the same decision reads the same.
        errors = tuple(sorted(result.diagnostics.errors))
        if errors:
            # Cedar skipped the failing policies; one of them may have been a forbid: deny.
            return PolicyResult(allowed=False, errors=errors, policy_version=self.version)
        return PolicyResult(
            allowed=result.allowed, policy_ids=tuple(sorted(result.diagnostics.reasons)), policy_version=self.version
        )


def _policy_json(active: ActivePolicySet) -> tuple[dict[str, Any], tuple[str, ...]]:
    static: dict[str, Any] = {}
    for version in active.versions:
        parsed = parse_policies(version.text)
        if parsed.get("templates"):
            msg = f"{version.ref} holds templates, which are not supported"
            raise ValueError(msg)
        for position, policy in parsed.get("staticPolicies", {}).items():
            annotation = policy.get("annotations", {}).get("id")
            label = annotation if isinstance(annotation, str) and annotation else position
            policy_id = f"{version.ref}/{label}"
            if policy_id in static:  # validation refuses duplicate @ids; never let one hide another
                policy_id = f"{version.ref}/{position}"
            static[policy_id] = policy
    return {"staticPolicies": static, "templates": {}, "templateLinks": []}, tuple(static)


def compile_policies(active: ActivePolicySet) -> CompiledPolicies:
    """Parse every active version into one policy set; a failure gives a set that denies everything, saying why."""
    if not active.versions:
        return CompiledPolicies(generation=active.generation, refs=(), policy_ids=(), handle=None)
    try:
        document, policy_ids = _policy_json(active)
        handle = cedarpy.PolicySet.from_json_str(json.dumps(document))
        context = context_attributes(document["staticPolicies"].values())
    except ValueError as error:
        _log.error("policy set generation %s does not compile: %s", active.generation, error)
        problem = f"policy set generation {active.generation} does not compile: {error}"
        return CompiledPolicies(
            generation=active.generation, refs=active.refs, policy_ids=(), handle=None, problem=problem
        )
    return CompiledPolicies(
        generation=active.generation, refs=active.refs, policy_ids=policy_ids, handle=handle, context=context
    )


NOT_LOADED: Final = CompiledPolicies(
    generation=0, refs=(), policy_ids=(), handle=None, problem="the policy set could not be loaded yet"
)


class CedarPolicyEngine:
    """The `PolicyEvaluator` over cedarpy: the active set compiled once per generation, swapped atomically."""

    def __init__(self, source: ActivePolicySource, *, entity_cache_size: int = DEFAULT_ENTITY_CACHE) -> None:
        self._source = source
        self._current: CompiledPolicies | None = None
        self._reload = threading.Lock()
        self.entities = EntityCache(entity_cache_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lazy_attempt: float | None = None
        self.healthy = True

    # ------------------------------------------------------------ PolicyEvaluator

    @property
    def version(self) -> int | None:
        """The loaded set's generation, or None when nothing is active (or nothing could be loaded yet)."""
        return self._loaded().version

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        return self._loaded().evaluate(request, self._entities)

    # ------------------------------------------------------------ loading

    @property
    def compiled(self) -> CompiledPolicies | None:
        """The set decisions use now (None before the first load)."""
        return self._current

    def _entities(self, request: PolicyRequest) -> cedarpy.Entities:
        return self.entities.get(entities_key(request), lambda: build_entities(request))

    def _loaded(self) -> CompiledPolicies:
        current = self._current
        if current is not None:
            return current
        # First use before any refresh (a process that never started its poll): load it here, but
        # try at most once per LAZY_RETRY_SECONDS, so an unreachable store does not put a connection
        # attempt on every decision.
        now = time.monotonic()
        if self._last_lazy_attempt is None or now - self._last_lazy_attempt >= LAZY_RETRY_SECONDS:
            self._last_lazy_attempt = now
            try:
                self.refresh()
            except RemitError as error:
                _log.warning("policy set not loaded (%s); denying until it is", error.code)
        return self._current or NOT_LOADED

    def load(self, active: ActivePolicySet) -> CompiledPolicies:
        """Compile `active` and swap it in, unless a newer generation is already loaded."""
        compiled = compile_policies(active)
        with self._reload:
            current = self._current
            if current is None or compiled.generation >= current.generation:
                self._current = compiled
                return compiled
            return current

    def refresh(self) -> bool:
        """Reload when the stored generation moved; True when a new set was swapped in. Raises on a store failure."""
        with self._reload:
            current = self._current
            try:
                generation = self._source.generation()
                if current is not None and generation == current.generation:
                    self.healthy = True
                    return False
                active = self._source.active_set()
            except RemitError:
                self.healthy = False
                raise
            self.healthy = True
            compiled = compile_policies(active)
            self._current = compiled
        if current is None or current.generation != compiled.generation:
            _log.info("policy set generation %s loaded: %s", compiled.generation, ", ".join(compiled.refs) or "none")
        return True

    def on_policy_set_changed(self, event: PolicySetChanged) -> None:
        """Bus handler: swap at once in the process that activated (after its commit)."""
        del event
        try:
            self.refresh()
        except RemitError as error:
            _log.warning("policy reload after a change failed (%s); the poll will retry", error.code)

    # ------------------------------------------------------------ background poll

    def start(self, *, interval_seconds: float = 1.0) -> None:
        """Poll the generation every `interval_seconds` (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="remit-policy-reload", daemon=True
        )
        self._thread.start()

    def _run(self, interval_seconds: float) -> None:
        while not self._stop.wait(interval_seconds):
            try:
                self.refresh()
            except RemitError as error:
                current = self._current
                kept = None if current is None else current.generation
                _log.warning("policy reload: %s; keeping generation %s", error.code, kept)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

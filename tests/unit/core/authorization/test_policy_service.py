"""Policy versions: validated on add, immutable, at most one active per name, a generation per change, all audited."""

from __future__ import annotations

import shutil
import tempfile
import threading

from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.factories import OPERATOR, make_tool

from remit.adapters.cedar import CedarPolicyValidator
from remit.adapters.sql.engine import SqlDatabase
from remit.core.authorization.policies import PolicyService, PolicySetChanged, parse_policy_ref
from remit.core.events import InProcessEventBus
from remit.core.ids import IdFactory, RandomIdFactory, SequentialIdFactory
from remit.core.registry.models import RiskClass, ToolAction
from remit.core.registry.service import RegistryService
from remit.errors import Conflict, InvalidRequest, NotFound
from remit.testing import FrozenClock

PERMIT = '@id("all") permit (principal, action, resource);'
FORBID_DEPLOY = '@id("no-deploys") forbid (principal, action in Action::"deploy", resource);'
FORBID_MERGE = '@id("no-merge") forbid (principal, action == Action::"github:merge_pr", resource);'


def make_service(
    database: SqlDatabase, *, bus: InProcessEventBus | None = None, ids: IdFactory | None = None
) -> PolicyService:
    return PolicyService(
        database.transaction,
        validator=CedarPolicyValidator(),
        clock=FrozenClock(),
        ids=ids or SequentialIdFactory(),
        bus=bus or InProcessEventBus(),
    )


@pytest.fixture
def policies(database: SqlDatabase, ids: SequentialIdFactory, bus: InProcessEventBus) -> PolicyService:
    return make_service(database, bus=bus, ids=ids)


def audit_types(database: SqlDatabase) -> list[str]:
    with database.transaction() as tx:
        return [e.type for e in reversed(tx.audit.recent(limit=1000))]


def test_add_stores_numbered_immutable_versions(policies: PolicyService) -> None:
    """The first add is version 1, the next version 2; each keeps its text, digest and author."""
    first = policies.add(name="base", text=PERMIT, description="allow the task scope", actor=OPERATOR)
    second = policies.add(name="base", text=PERMIT + "\n// reviewed\n", actor=OPERATOR)

    document, versions = policies.versions("base")

    assert (first.ref, second.ref) == ("base@1", "base@2")
    assert [v.ref for v in versions] == ["base@1", "base@2"]
    assert versions[0].text == PERMIT
    assert versions[0].sha256 == first.sha256
    assert first.sha256.startswith("sha256:")
    assert versions[0].description == "allow the task scope"
    assert versions[0].created_by == OPERATOR
    assert (document.latest_version, document.active_version) == (2, None)


def test_adding_the_same_text_again_is_a_conflict(policies: PolicyService) -> None:
    """A new version must differ from the latest one."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)

    with pytest.raises(Conflict, match="identical to base@1"):
        policies.add(name="base", text=PERMIT, actor=OPERATOR)


def test_a_policy_that_does_not_validate_is_refused_with_cedars_diagnostics(
    policies: PolicyService, database: SqlDatabase
) -> None:
    """An unknown action is an InvalidRequest whose errors carry Cedar's message under the policy's @id; nothing is stored."""
    text = '@id("typo") forbid (principal, action == Action::"github:merge_pr", resource);'

    with pytest.raises(InvalidRequest) as caught:
        policies.add(name="merges", text=text, actor=OPERATOR)

    error = caught.value
    assert error.errors[0].loc == ("text", "typo")
    assert 'unrecognized action `Action::"github:merge_pr"`' in error.errors[0].msg
    assert policies.list().items == ()
    assert audit_types(database) == []


def test_the_schema_comes_from_the_registry(policies: PolicyService, registry: RegistryService) -> None:
    """Once the tool is registered, a policy naming its action validates."""
    make_tool(registry)

    version = policies.add(name="merges", text=FORBID_MERGE, actor=OPERATOR)

    assert version.ref == "merges@1"
    assert 'action "github:merge_pr" in [Action::"write"]' in policies.schema().text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad Name", "text": PERMIT}, "name"),
        ({"name": "ok", "text": "   "}, "text"),
        ({"name": "ok", "text": "permit (principal, action, resource);" * 2000}, "text"),
        ({"name": "ok", "text": PERMIT, "description": "x" * 501}, "description"),
    ],
)
def test_malformed_input_is_refused(policies: PolicyService, kwargs: dict[str, str], field: str) -> None:
    """Names follow the registry's name rule; text and description are bounded."""
    with pytest.raises(InvalidRequest) as caught:
        policies.add(actor=OPERATOR, **kwargs)

    assert caught.value.errors[0].loc[0] == field


def test_activation_makes_a_version_active_and_moves_the_generation(
    policies: PolicyService, bus: InProcessEventBus, database: SqlDatabase
) -> None:
    """Activating publishes the new generation after commit and puts the version in the active set."""
    seen: list[int] = []
    bus.subscribe(PolicySetChanged, lambda e: seen.append(e.generation))
    policies.add(name="base", text=PERMIT, actor=OPERATOR)
    assert policies.active_set().version is None

    document, generation = policies.activate("base", 1, actor=OPERATOR)

    active = policies.active_set()
    assert (document.active_version, document.activated_by) == (1, OPERATOR)
    assert generation == 1 == active.version == policies.generation()
    assert active.refs == ("base@1",)
    assert seen == [1]
    assert audit_types(database) == ["policy.added", "policy.activated"]


def test_at_most_one_version_of_a_name_is_active(policies: PolicyService) -> None:
    """Activating version 2 replaces version 1; other names stay active."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)
    policies.add(name="base", text=PERMIT + "\n", actor=OPERATOR)
    policies.add(name="deploys", text=FORBID_DEPLOY, actor=OPERATOR)
    policies.activate("base", 1, actor=OPERATOR)
    policies.activate("deploys", 1, actor=OPERATOR)

    _, generation = policies.activate("base", 2, actor=OPERATOR)

    assert generation == 3
    assert policies.active_set().refs == ("base@2", "deploys@1")


def test_deactivation_empties_the_set_and_leaves_no_version(policies: PolicyService, database: SqlDatabase) -> None:
    """With its only policy deactivated, the set has no version: everything is denied."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)
    policies.activate("base", 1, actor=OPERATOR)

    document, generation = policies.deactivate("base", actor=OPERATOR)

    assert document.active_version is None
    assert generation == 2
    assert policies.active_set().version is None
    assert audit_types(database)[-1] == "policy.deactivated"


def test_activation_records_what_the_set_became(policies: PolicyService, database: SqlDatabase) -> None:
    """The audit record of an activation names the version, what it replaced, the generation and the whole set."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)
    policies.add(name="base", text=PERMIT + "\n", actor=OPERATOR)
    policies.activate("base", 1, actor=OPERATOR)

    policies.activate("base", 2, actor=OPERATOR)

    with database.transaction() as tx:
        record = tx.audit.recent(limit=1)[0]
    assert record.type == "policy.activated"
    assert record.subject_kind == "policy"
    assert record.data["ref"] == "base@2"
    assert record.data["replaced"] == "base@1"
    assert record.data["generation"] == 2
    assert record.data["active"] == ["base@2"]


def test_refused_changes_do_not_move_the_generation(policies: PolicyService) -> None:
    """Unknown names or versions, re-activating the active version and deactivating nothing are refused."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)
    policies.activate("base", 1, actor=OPERATOR)

    with pytest.raises(NotFound):
        policies.activate("nope", 1, actor=OPERATOR)
    with pytest.raises(NotFound):
        policies.activate("base", 9, actor=OPERATOR)
    with pytest.raises(Conflict, match="already active"):
        policies.activate("base", 1, actor=OPERATOR)
    policies.deactivate("base", actor=OPERATOR)
    with pytest.raises(Conflict, match="no active version"):
        policies.deactivate("base", actor=OPERATOR)

    assert policies.generation() == 2


def test_activation_revalidates_against_the_current_tools(policies: PolicyService, registry: RegistryService) -> None:
    """A version naming an action the tool no longer has cannot be activated: a 400 with Cedar's reason."""
    tool = make_tool(registry)
    policies.add(name="merges", text=FORBID_MERGE, actor=OPERATOR)
    registry.change_tool(tool.name, actions=[ToolAction("read_file", RiskClass.READ)], actor=OPERATOR)

    with pytest.raises(InvalidRequest, match="no longer validates") as caught:
        policies.activate("merges", 1, actor=OPERATOR)

    assert caught.value.details["policy"] == "merges@1"
    assert policies.generation() == 0


def test_listing_is_by_name_and_paginates(policies: PolicyService) -> None:
    """Documents list in name order; `next_cursor` continues the listing."""
    for name in ("c", "a", "b"):
        policies.add(name=name, text=PERMIT, actor=OPERATOR)

    first = policies.list(limit=2)
    rest = policies.list(limit=2, after=first.next_cursor)

    assert [d.name for d in first.items] == ["a", "b"]
    assert [d.name for d in rest.items] == ["c"]
    assert rest.next_cursor is None


def test_reading_unknown_policies_is_not_found(policies: PolicyService) -> None:
    """Unknown names and versions are NotFound."""
    policies.add(name="base", text=PERMIT, actor=OPERATOR)

    with pytest.raises(NotFound):
        policies.get("other")
    with pytest.raises(NotFound):
        policies.get_version("base", 2)
    with pytest.raises(NotFound):
        policies.versions("other")


@pytest.mark.parametrize(("raw", "parsed"), [("base@1", ("base", 1)), (" deploys@12 ", ("deploys", 12))])
def test_policy_refs_parse(raw: str, parsed: tuple[str, int]) -> None:
    """NAME@VERSION names one version."""
    assert parse_policy_ref(raw) == parsed


@pytest.mark.parametrize("raw", ["base", "base@", "base@0", "base@x", "@1", "Base@1", "base@1@2"])
def test_malformed_policy_refs_are_refused(raw: str) -> None:
    """Anything but NAME@VERSION with a positive version is InvalidRequest."""
    with pytest.raises(InvalidRequest):
        parse_policy_ref(raw)


def test_concurrent_activations_get_distinct_generations(database: SqlDatabase) -> None:
    """Activations racing from two threads (two replicas' services) each get their own generation."""
    setup = make_service(database)
    names = [f"p{i}" for i in range(6)]
    for name in names:
        setup.add(name=name, text=PERMIT, actor=OPERATOR)
    results: list[int] = []
    errors: list[Exception] = []

    def activate(name: str) -> None:
        try:
            replica = make_service(database, ids=RandomIdFactory(lambda: 0))
            results.append(replica.activate(name, 1, actor=OPERATOR)[1])
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=activate, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert setup.active_set().generation == 6
    assert len(setup.active_set().versions) == 6


# ------------------------------------------------------------------ a property over change sequences

_NAMES = ("a", "b", "c")
_steps = st.lists(
    st.tuples(st.sampled_from(["activate", "deactivate", "add"]), st.sampled_from(_NAMES), st.integers(1, 3)),
    max_size=25,
)


@settings(max_examples=25)
@given(steps=_steps)
def test_any_change_sequence_keeps_one_active_version_per_name_and_a_rising_generation(
    sqlite_template: Path, steps: list[tuple[str, str, int]]
) -> None:
    """Whatever operators do: at most one active version per name, and every accepted change raises the generation by one."""
    home = Path(tempfile.mkdtemp())
    try:
        shutil.copyfile(sqlite_template, home / "remit.db")
        database = SqlDatabase.connect(f"sqlite:///{home / 'remit.db'}")
        service = make_service(database)
        for name in _NAMES:
            service.add(name=name, text=PERMIT, actor=OPERATOR)
        expected: dict[str, int | None] = dict.fromkeys(_NAMES)
        generation = 0
        for kind, name, version in steps:
            try:
                if kind == "add":
                    service.add(name=name, text=f"{PERMIT}\n// {version} {generation}", actor=OPERATOR)
                    continue
                if kind == "activate":
                    _, now = service.activate(name, version, actor=OPERATOR)
                    expected[name] = version
                else:
                    _, now = service.deactivate(name, actor=OPERATOR)
                    expected[name] = None
            except (Conflict, NotFound):
                assert service.generation() == generation
                continue
            assert now == generation + 1
            generation = now
            active = service.active_set()
            assert len({v.name for v in active.versions}) == len(active.versions)
            assert {v.name: v.version for v in active.versions} == {n: v for n, v in expected.items() if v}
        database.dispose()
    finally:
        shutil.rmtree(home)


def test_check_validates_without_storing(policies: PolicyService) -> None:
    """`check` gives Cedar's diagnostics for a text against the current schema and stores nothing."""
    assert policies.check(PERMIT) == ()
    found = policies.check(FORBID_MERGE)

    assert found
    assert found[0].policy == "no-merge"
    assert policies.list().items == ()

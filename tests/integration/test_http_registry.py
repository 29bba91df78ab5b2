"""The /v1 registry endpoints over real HTTP: happy paths, the main refusals, pagination and the actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LiveServer

PROBLEM = "application/problem+json"
REVIEW_BY = "2099-01-01"
SPIFFE = "spiffe://acme.example/agents/invoice-bot"


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"].endswith(f"/{body['id']}")
    return body


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    return body


def add_owner(api: httpx.Client, email: str = "ada@acme.example", name: str = "Ada") -> dict[str, Any]:
    return created(api.post("/v1/owners", json={"name": name, "email": email}))


def add_function(api: httpx.Client, name: str = "invoicing", owner: str = "ada@acme.example") -> dict[str, Any]:
    return created(api.post("/v1/functions", json={"name": name, "description": "pay suppliers", "owner": owner}))


def add_tool(api: httpx.Client, name: str = "erp") -> dict[str, Any]:
    return created(
        api.post(
            "/v1/tools",
            json={
                "name": name,
                "actions": [{"name": "read", "risk_class": "read"}, {"name": "pay", "risk_class": "payment"}],
                "resources": [
                    {"pattern": "invoices/*", "sensitivity": "internal"},
                    {"pattern": "payroll/*", "sensitivity": "restricted"},
                ],
            },
        )
    )


def add_agent(
    api: httpx.Client,
    name: str = "invoice-bot",
    spiffe_id: str = SPIFFE,
    owner: str | None = "ada@acme.example",
    function: str | None = "invoicing",
) -> dict[str, Any]:
    body = {
        "name": name,
        "identity": {"spiffe_id": spiffe_id},
        "owner": owner,
        "function": function,
        "environments": ["prod"],
        "review_by": REVIEW_BY,
    }
    return created(api.post("/v1/agents", json=body))


def add_workflow(api: httpx.Client, name: str = "pay-invoice") -> dict[str, Any]:
    body = {
        "name": name,
        "function": "invoicing",
        "steps": [{"tool": "erp", "action": "pay", "resource": "invoices/*"}],
        "max_duration_seconds": 900,
    }
    return created(api.post("/v1/workflows", json=body))


def organisation(api: httpx.Client) -> dict[str, Any]:
    owner = add_owner(api)
    function = add_function(api)
    add_tool(api)
    agent = add_agent(api)
    return {"owner": owner, "function": function, "agent": agent}


# ------------------------------------------------------------------ owners


def test_owner_is_registered_and_found_by_id_and_email(api: httpx.Client) -> None:
    """POST /v1/owners answers 201 with a Location, and the owner reads back by id and by email."""
    owner = add_owner(api)

    by_id = api.get(f"/v1/owners/{owner['id']}")
    by_email = api.get("/v1/owners/ADA@acme.example")

    assert by_id.status_code == by_email.status_code == 200
    assert by_id.json() == by_email.json() == owner
    assert owner["status"] == "active"
    assert owner["revision"] == 1


def test_owner_email_is_unique(api: httpx.Client) -> None:
    """A second owner with the same email is a 409 conflict."""
    add_owner(api)

    refused(api.post("/v1/owners", json={"name": "Other", "email": "ada@acme.example"}), 409, "conflict")


def test_owner_change_applies_and_checks_the_revision(api: httpx.Client) -> None:
    """PATCH changes only the given fields; a stale expected_revision is a 409."""
    owner = add_owner(api)

    changed = api.patch(f"/v1/owners/{owner['id']}", json={"name": "Ada L.", "expected_revision": 1})
    stale = api.patch(f"/v1/owners/{owner['id']}", json={"name": "Ada X", "expected_revision": 1})

    assert changed.status_code == 200
    assert changed.json()["name"] == "Ada L."
    assert changed.json()["email"] == "ada@acme.example"
    assert changed.json()["revision"] == 2
    assert refused(stale, 409, "conflict")["revision"] == 2


def test_offboarding_an_owner_suspends_their_agents(api: httpx.Client) -> None:
    """POST /offboard returns the offboarded owner and the agents suspended with them; twice is a 409."""
    org = organisation(api)

    response = api.post("/v1/owners/ada@acme.example/offboard", json={"reason": "left the company"})
    again = api.post("/v1/owners/ada@acme.example/offboard", json={"reason": "again"})

    assert response.status_code == 200
    assert response.json()["owner"]["status"] == "offboarded"
    assert response.json()["suspended_agents"] == [org["agent"]["id"]]
    assert api.get(f"/v1/agents/{org['agent']['id']}").json()["status"] == "suspended"
    refused(again, 409, "conflict")


def test_offboarding_needs_a_reason(api: httpx.Client) -> None:
    """An offboarding without a reason is a 400 naming the `reason` field."""
    add_owner(api)

    body = refused(api.post("/v1/owners/ada@acme.example/offboard", json={}), 400, "invalid_request")

    assert [e["loc"] for e in body["errors"]] == [["reason"]]


def test_unknown_owner_is_not_found(api: httpx.Client) -> None:
    """GET, PATCH and offboard of an unknown owner answer 404 problems."""
    refused(api.get("/v1/owners/nobody@acme.example"), 404, "not_found")
    refused(api.patch("/v1/owners/own_nope", json={"name": "x"}), 404, "not_found")
    refused(api.post("/v1/owners/nobody@acme.example/offboard", json={"reason": "r"}), 404, "not_found")


def test_owner_listing_pages_with_a_cursor(api: httpx.Client) -> None:
    """GET /v1/owners pages by id: `limit` bounds a page and `next_cursor` passed as `after` continues it."""
    ids = [add_owner(api, email=f"owner{n}@acme.example")["id"] for n in range(5)]

    first = api.get("/v1/owners", params={"limit": 2}).json()
    second = api.get("/v1/owners", params={"limit": 2, "after": first["next_cursor"]}).json()
    third = api.get("/v1/owners", params={"limit": 2, "after": second["next_cursor"]}).json()
    everything = api.get("/v1/owners").json()

    seen = [o["id"] for page in (first, second, third) for o in page["items"]]
    assert seen == sorted(ids)
    assert third["next_cursor"] is None
    assert [o["id"] for o in everything["items"]] == sorted(ids)
    assert everything["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
def test_page_size_outside_1_to_500_is_refused(api: httpx.Client, limit: str) -> None:
    """A `limit` outside 1-500 (or not a number) is a 400 naming `limit`."""
    body = refused(api.get("/v1/agents", params={"limit": limit}), 400, "invalid_request")

    assert [e["loc"] for e in body["errors"]] == [["limit"]]


# ------------------------------------------------------------------ business functions


def test_function_is_registered_changed_and_listed(api: httpx.Client) -> None:
    """A business function is created for an owner, read by name, changed and listed."""
    owner = add_owner(api)
    add_owner(api, email="bob@acme.example", name="Bob")
    function = add_function(api)

    changed = api.patch("/v1/functions/invoicing", json={"owner": "bob@acme.example", "description": "new"})
    listed = api.get("/v1/functions").json()

    assert function["owner_id"] == owner["id"]
    assert api.get("/v1/functions/invoicing").json()["id"] == function["id"]
    assert changed.status_code == 200
    assert changed.json()["description"] == "new"
    assert changed.json()["owner_id"] != owner["id"]
    assert [f["name"] for f in listed["items"]] == ["invoicing"]


def test_function_needs_a_known_owner_and_a_unique_name(api: httpx.Client) -> None:
    """An unknown owner is a 404, a taken name a 409, an invalid name a 400 on `name`."""
    add_owner(api)
    add_function(api)

    refused(
        api.post("/v1/functions", json={"name": "x", "description": "d", "owner": "who@x.example"}), 404, "not_found"
    )
    refused(
        api.post("/v1/functions", json={"name": "invoicing", "description": "d", "owner": "ada@acme.example"}),
        409,
        "conflict",
    )
    bad = refused(
        api.post("/v1/functions", json={"name": "Bad Name", "description": "d", "owner": "ada@acme.example"}),
        400,
        "invalid_request",
    )
    assert [e["loc"] for e in bad["errors"]] == [["name"]]


# ------------------------------------------------------------------ agents


def test_agent_is_registered_and_read_by_name(api: httpx.Client) -> None:
    """An agent binds a SPIFFE ID to an owner and function; it reads back by id and by name."""
    org = organisation(api)
    agent = org["agent"]

    assert agent["identity"] == {"spiffe_id": SPIFFE, "oidc": None}
    assert agent["identity_key"] == SPIFFE
    assert agent["owner_id"] == org["owner"]["id"]
    assert agent["function_id"] == org["function"]["id"]
    assert agent["status"] == "active"
    assert api.get("/v1/agents/invoice-bot").json() == agent
    assert api.get("/v1/agents").json()["items"] == [agent]


def test_an_identity_is_never_shared_between_agents(api: httpx.Client) -> None:
    """Registering a second agent with an already bound SPIFFE ID is a 409 naming the holder."""
    org = organisation(api)
    body = {
        "name": "copycat",
        "identity": {"spiffe_id": SPIFFE},
        "owner": "ada@acme.example",
        "function": "invoicing",
        "environments": ["prod"],
        "review_by": REVIEW_BY,
    }

    problem = refused(api.post("/v1/agents", json=body), 409, "conflict")

    assert problem["agent_id"] == org["agent"]["id"]


def test_a_human_owners_identity_cannot_be_an_agent(api: httpx.Client) -> None:
    """An OIDC identity listed as an owner's human identity is refused as an agent identity (400 on `identity`)."""
    human = {"issuer": "https://login.acme.example", "subject": "ada"}
    created(api.post("/v1/owners", json={"name": "Ada", "email": "ada@acme.example", "human_identities": [human]}))
    body = {
        "name": "sneaky",
        "identity": {"oidc": human},
        "owner": "ada@acme.example",
        "environments": ["prod"],
        "review_by": REVIEW_BY,
    }

    problem = refused(api.post("/v1/agents", json=body), 400, "invalid_request")

    assert problem["errors"][0]["loc"] == ["identity"]


@pytest.mark.parametrize(
    ("identity", "loc"),
    [
        ({"spiffe_id": "https://acme.example/agents/x"}, ["identity", "spiffe_id"]),
        ({"spiffe_id": "spiffe://acme.example/../x"}, ["identity", "spiffe_id"]),
        ({"oidc": {"issuer": "http://plain.example", "subject": "s"}}, ["identity", "oidc", "issuer"]),
        ({}, ["identity"]),
        ({"spiffe_id": SPIFFE, "oidc": {"issuer": "https://i.example", "subject": "s"}}, ["identity"]),
    ],
)
def test_malformed_identities_are_refused_field_by_field(
    api: httpx.Client, identity: dict[str, Any], loc: list[str]
) -> None:
    """A malformed workload identity is a 400 whose `errors[].loc` points at the bad field."""
    body = {"name": "bot", "identity": identity, "environments": ["prod"], "review_by": REVIEW_BY}

    problem = refused(api.post("/v1/agents", json=body), 400, "invalid_request")

    assert loc in [e["loc"] for e in problem["errors"]]


def test_agent_review_date_must_be_in_the_future(api: httpx.Client) -> None:
    """A review date in the past is a 400 on `review_by`."""
    body = {"name": "bot", "identity": {"spiffe_id": SPIFFE}, "environments": ["prod"], "review_by": "2000-01-01"}

    problem = refused(api.post("/v1/agents", json=body), 400, "invalid_request")

    assert problem["errors"][0]["loc"] == ["review_by"]


def test_agent_change_and_lifecycle(api: httpx.Client) -> None:
    """An agent changes, is suspended, reactivated and retired; a retired agent can neither change nor come back."""
    organisation(api)

    changed = api.patch("/v1/agents/invoice-bot", json={"environments": ["prod", "staging"], "description": "d"})
    suspended = api.post("/v1/agents/invoice-bot/suspend", json={"reason": "incident"})
    reactivated = api.post("/v1/agents/invoice-bot/reactivate", json={"reason": "fixed"})
    retired = api.post("/v1/agents/invoice-bot/retire", json={"reason": "replaced"})

    assert changed.json()["environments"] == ["prod", "staging"]
    assert suspended.json()["status"] == "suspended"
    assert reactivated.json()["status"] == "active"
    assert retired.json()["status"] == "retired"
    refused(api.post("/v1/agents/invoice-bot/reactivate", json={"reason": "back"}), 409, "conflict")
    refused(api.patch("/v1/agents/invoice-bot", json={"description": "x"}), 409, "conflict")


def test_untraceable_agents_are_reported(api: httpx.Client) -> None:
    """An agent without owner or function is untraceable: its traceability says why and the report lists it."""
    organisation(api)
    orphan = add_agent(api, name="orphan", spiffe_id="spiffe://acme.example/agents/orphan", owner=None, function=None)

    traced = api.get("/v1/agents/invoice-bot/traceability").json()
    untraced = api.get("/v1/agents/orphan/traceability").json()
    report = api.get("/v1/reports/untraceable").json()

    assert traced == {"agent_id": api.get("/v1/agents/invoice-bot").json()["id"], "traceable": True, "problems": []}
    assert untraced["traceable"] is False
    assert set(untraced["problems"]) == {"no_owner", "no_business_function"}
    assert [(r["agent"]["id"], set(r["problems"])) for r in report] == [
        (orphan["id"], {"no_owner", "no_business_function"})
    ]
    assert api.post("/v1/agents/orphan/suspend", json={"reason": "x"}).status_code == 200
    refused(api.post("/v1/agents/orphan/reactivate", json={"reason": "x"}), 409, "conflict")


# ------------------------------------------------------------------ tools


def test_tool_is_registered_changed_and_listed(api: httpx.Client) -> None:
    """A tool keeps its actions' risk classes and resources' sensitivities; PATCH replaces given lists."""
    tool = add_tool(api)

    changed = api.patch(
        "/v1/tools/erp",
        json={"resources": [{"pattern": "invoices/*", "sensitivity": "public"}], "expected_revision": 1},
    )

    assert {a["name"]: a["risk_class"] for a in tool["actions"]} == {"read": "read", "pay": "payment"}
    assert {r["pattern"]: r["sensitivity"] for r in tool["resources"]} == {
        "invoices/*": "internal",
        "payroll/*": "restricted",
    }
    assert changed.status_code == 200
    assert [r["sensitivity"] for r in changed.json()["resources"]] == ["public"]
    assert api.get(f"/v1/tools/{tool['id']}").json() == changed.json()
    assert [t["name"] for t in api.get("/v1/tools").json()["items"]] == ["erp"]
    refused(api.post("/v1/tools", json={**{k: tool[k] for k in ("name", "actions", "resources")}}), 409, "conflict")


def test_tool_with_an_unknown_risk_class_is_refused(api: httpx.Client) -> None:
    """A risk class outside read|write|deploy|payment|export|admin is a 400 on that action."""
    body = {
        "name": "erp",
        "actions": [{"name": "nuke", "risk_class": "apocalyptic"}],
        "resources": [{"pattern": "x/*", "sensitivity": "public"}],
    }

    problem = refused(api.post("/v1/tools", json=body), 400, "invalid_request")

    assert problem["errors"][0]["loc"] == ["actions", 0, "risk_class"]


# ------------------------------------------------------------------ workflows


def test_workflow_versions_are_drafted_approved_and_immutable(api: httpx.Client) -> None:
    """A draft changes until approved (by the operator, pinning its hash); then it is immutable and v2 is a new draft."""
    organisation(api)
    draft = add_workflow(api)

    changed = api.patch("/v1/workflows/pay-invoice@1", json={"max_duration_seconds": 600})
    stale_hash = api.post("/v1/workflows/pay-invoice@1/approve", json={"expected_hash": draft["content_hash"]})
    approved = api.post("/v1/workflows/pay-invoice@1/approve", json={"expected_hash": changed.json()["content_hash"]})
    frozen = api.patch("/v1/workflows/pay-invoice@1", json={"description": "sneaky"})
    second = add_workflow(api)
    versions = api.get("/v1/workflows/pay-invoice/versions").json()

    assert draft["state"] == "draft"
    assert draft["ref"] == "pay-invoice@1"
    assert changed.json()["max_duration_seconds"] == 600
    refused(stale_hash, 409, "conflict")
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"
    assert approved.json()["approved_by"] == "operator"  # the authenticated operator is the actor
    refused(frozen, 409, "conflict")
    assert second["version"] == 2
    assert [(v["ref"], v["state"]) for v in versions] == [("pay-invoice@1", "approved"), ("pay-invoice@2", "draft")]
    assert api.get(f"/v1/workflows/{draft['id']}").json()["ref"] == "pay-invoice@1"
    assert len(api.get("/v1/workflows").json()["items"]) == 2


def test_workflow_retirement(api: httpx.Client) -> None:
    """Retiring a workflow version ends it; retiring it again is a 409."""
    organisation(api)
    add_workflow(api)

    retired = api.post("/v1/workflows/pay-invoice@1/retire", json={"reason": "obsolete"})

    assert retired.json()["state"] == "retired"
    refused(api.post("/v1/workflows/pay-invoice@1/retire", json={"reason": "again"}), 409, "conflict")


def test_workflow_refs_and_steps_are_checked(api: httpx.Client) -> None:
    """A ref that is neither an id nor name@version is a 400; a step on an unknown tool is a 400 on that step."""
    organisation(api)
    body = {
        "name": "w",
        "function": "invoicing",
        "steps": [{"tool": "nope", "action": "pay", "resource": "x/*"}],
        "max_duration_seconds": 60,
    }

    refused(api.get("/v1/workflows/pay-invoice"), 400, "invalid_request")
    refused(api.get("/v1/workflows/pay-invoice@9"), 404, "not_found")
    refused(api.get("/v1/workflows/unknown/versions"), 404, "not_found")
    problem = refused(api.post("/v1/workflows", json=body), 400, "invalid_request")
    assert problem["errors"][0]["loc"] == ["steps", "0", "tool"]


# ------------------------------------------------------------------ grants


def test_standing_read_grant_is_created_listed_and_deleted(api: httpx.Client) -> None:
    """A read of internal resources may stand: created (by the operator), listed, deleted with 204, then gone."""
    org = organisation(api)

    grant = created(
        api.post(
            "/v1/grants",
            json={"agent": "invoice-bot", "tool": "erp", "action": "read", "resource": "invoices/*", "reason": "r"},
        )
    )
    listed = api.get("/v1/grants").json()
    deleted = api.delete(f"/v1/grants/{grant['id']}")

    assert grant["agent_id"] == org["agent"]["id"]
    assert grant["created_by"] == "operator"
    assert [g["id"] for g in listed["items"]] == [grant["id"]]
    assert deleted.status_code == 204
    assert deleted.content == b""
    refused(api.delete(f"/v1/grants/{grant['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("action", "resource", "field"),
    [("pay", "invoices/*", "action"), ("read", "payroll/*", "resource"), ("read", "*", "resource")],
)
def test_standing_grants_beyond_public_or_internal_reads_are_refused(
    api: httpx.Client, action: str, resource: str, field: str
) -> None:
    """Only reads of public/internal resources may stand: anything else is a 400 naming the offending field."""
    organisation(api)
    body = {"agent": "invoice-bot", "tool": "erp", "action": action, "resource": resource, "reason": "r"}

    problem = refused(api.post("/v1/grants", json=body), 400, "invalid_request")

    assert problem["errors"][0]["loc"] == [field]

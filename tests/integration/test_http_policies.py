"""The /v1/policies API on a live server: add, show, activate, deactivate, the schema, and 400s with Cedar's words."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import LiveServer
from tests.policy_requests import policy_request

from remit.errors import InvalidRequest
from remit.sdk.client import RemitClient
from remit.wire.policies import PolicyIn

PROBLEM = "application/problem+json"
PERMIT = '@id("all") permit (principal, action, resource);'
FORBID_MERGE = '@id("no-merge") forbid (principal, action == Action::"github:merge_pr", resource);'
GITHUB = {
    "name": "github",
    "actions": [{"name": "read_repo", "risk_class": "read"}, {"name": "merge_pr", "risk_class": "write"}],
    "resources": [{"pattern": "repo:acme/*", "sensitivity": "internal"}],
}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


def test_add_then_read_a_policy_version(client: httpx.Client) -> None:
    """POST creates version 1 with a Location; GET returns the text, the listing shows it inactive."""
    created = client.post("/v1/policies", json={"name": "base", "text": PERMIT, "description": "task scope"})

    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/policies/base/versions/1"
    body = created.json()
    assert (body["ref"], body["active"], body["text"]) == ("base@1", False, PERMIT)
    assert client.get("/v1/policies/base/versions/1").json()["sha256"] == body["sha256"]
    listed = client.get("/v1/policies").json()
    assert [(p["name"], p["active_version"]) for p in listed["items"]] == [("base", None)]


def test_a_policy_that_does_not_validate_is_a_400_with_cedars_diagnostics(client: httpx.Client) -> None:
    """An unknown action answers invalid_request; each `errors` entry holds Cedar's message under the @id."""
    response = client.post("/v1/policies", json={"name": "merges", "text": FORBID_MERGE})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert problem["errors"][0]["loc"] == ["text", "no-merge"]
    assert 'unrecognized action `Action::"github:merge_pr"`' in problem["errors"][0]["msg"]


def test_a_syntax_error_is_a_400(client: httpx.Client) -> None:
    """Unparsable Cedar is refused with the parser's message."""
    response = client.post("/v1/policies", json={"name": "broken", "text": "permit (principal, action, resource"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["msg"].startswith("syntax error:")


def test_the_schema_follows_the_registry(client: httpx.Client) -> None:
    """After a tool is registered, the schema lists its actions and a policy naming them validates."""
    assert client.post("/v1/tools", json=GITHUB).status_code == 201

    schema = client.get("/v1/policies/schema").json()
    created = client.post("/v1/policies", json={"name": "merges", "text": FORBID_MERGE})

    assert 'action "github:merge_pr" in [Action::"write"]' in schema["cedar"]
    assert "github:merge_pr" in schema["cedar_json"][""]["actions"]
    assert created.status_code == 201


def test_activation_reaches_the_engine_of_this_process_at_once(live_server: LiveServer, client: httpx.Client) -> None:
    """Activating answers the new generation, and decisions in this process use it immediately."""
    client.post("/v1/policies", json={"name": "base", "text": PERMIT})

    activated = client.post("/v1/policies/base/activate", json={"version": 1})

    assert activated.status_code == 200, activated.text
    assert activated.json()["generation"] == 1
    assert activated.json()["policy"]["active_ref"] == "base@1"
    engine = live_server.remit.policy_engine
    assert engine.version == 1
    assert engine.evaluate(policy_request()).allowed
    active = client.get("/v1/policies/active").json()
    assert (active["generation"], active["version"]) == (1, 1)
    assert [p["ref"] for p in active["policies"]] == ["base@1"]


def test_deactivation_leaves_nothing_active(live_server: LiveServer, client: httpx.Client) -> None:
    """Deactivating the only policy moves the generation and leaves the engine without a version."""
    client.post("/v1/policies", json={"name": "base", "text": PERMIT})
    client.post("/v1/policies/base/activate", json={"version": 1})

    response = client.post("/v1/policies/base/deactivate")

    assert response.status_code == 200
    assert response.json()["generation"] == 2
    assert live_server.remit.policy_engine.version is None
    assert client.get("/v1/policies/active").json()["version"] is None


def test_show_lists_versions_and_marks_the_active_one(client: httpx.Client) -> None:
    """GET /v1/policies/{name} lists every version, oldest first, with the active one marked."""
    client.post("/v1/policies", json={"name": "base", "text": PERMIT})
    client.post("/v1/policies", json={"name": "base", "text": PERMIT + "\n// v2\n"})
    client.post("/v1/policies/base/activate", json={"version": 2})

    detail = client.get("/v1/policies/base").json()

    assert detail["active_ref"] == "base@2"
    assert [(v["ref"], v["active"]) for v in detail["versions"]] == [("base@1", False), ("base@2", True)]
    assert "text" not in detail["versions"][0]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/v1/policies/missing", None, 404, "not_found"),
        ("GET", "/v1/policies/base/versions/7", None, 404, "not_found"),
        ("POST", "/v1/policies/base/activate", {"version": 1}, 409, "conflict"),
        ("POST", "/v1/policies/missing/deactivate", None, 404, "not_found"),
        ("POST", "/v1/policies/base/activate", {"version": 0}, 400, "invalid_request"),
        ("POST", "/v1/policies", {"name": "base", "text": PERMIT, "extra": 1}, 400, "invalid_request"),
        ("POST", "/v1/policies", {"name": "schema", "text": PERMIT}, 400, "invalid_request"),
        ("POST", "/v1/policies", {"name": "base", "text": PERMIT}, 409, "conflict"),
    ],
)
def test_refusals_are_problem_documents(
    client: httpx.Client, method: str, path: str, body: dict[str, object] | None, status: int, code: str
) -> None:
    """Unknown policies are 404, repeated activations and identical text 409, malformed input 400."""
    client.post("/v1/policies", json={"name": "base", "text": PERMIT})
    client.post("/v1/policies/base/activate", json={"version": 1})

    response = client.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


def test_a_policy_too_large_is_refused(client: httpx.Client) -> None:
    """Text beyond 64 KiB is refused before it reaches Cedar."""
    response = client.post("/v1/policies", json={"name": "big", "text": PERMIT * 2000})

    assert response.status_code in {400, 413}


def test_the_sdk_speaks_the_policy_api(live_server: LiveServer) -> None:
    """RemitClient adds, activates, reads and deactivates; a bad policy is an InvalidRequest with Cedar's errors."""
    with RemitClient(live_server.url, token=live_server.token) as sdk:
        added = sdk.add_policy(PolicyIn(name="base", text=PERMIT))
        activated = sdk.activate_policy("base", added.version)
        shown = sdk.get_policy("base")
        version = sdk.get_policy_version("base", 1)
        listed = list(sdk.iter_policies())
        active = sdk.active_policies()
        schema = sdk.policy_schema()
        deactivated = sdk.deactivate_policy("base")
        with pytest.raises(InvalidRequest) as caught:
            sdk.add_policy(PolicyIn(name="merges", text=FORBID_MERGE))

    assert (added.ref, activated.generation, deactivated.generation) == ("base@1", 1, 2)
    assert shown.versions[0].active
    assert version.text == PERMIT
    assert [p.name for p in listed] == ["base"]
    assert [p.ref for p in active.policies] == ["base@1"]
    assert "entity Agent" in schema.cedar
    assert caught.value.errors[0].loc == ("text", "no-merge")

"""RemitClient: one typed method per v1 registry endpoint; problem documents (RFC 9457) become RemitError.

Every non-2xx answer is rebuilt into the matching `remit.errors` class from the problem's `code`, so
callers write `except Conflict:`; a server that cannot be reached is `Unavailable`. The operator token
travels only in the `Authorization` header and never appears in an error message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx

from pydantic import BaseModel, TypeAdapter, ValidationError

from remit.errors import (
    Conflict,
    Forbidden,
    InternalError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RemitError,
    Unauthenticated,
    Unavailable,
)
from remit.sdk.dpop import DpopKey
from remit.sdk.evidence import EvidenceSource
from remit.sdk.task import TaskSession, authorization_details, dpop_key_for
from remit.wire.approvals import (
    ApprovalAnswer,
    ApprovalOut,
    BreakGlassIn,
    BreakGlassReview,
    OperatorCreated,
    OperatorDisableIn,
    OperatorIn,
    OperatorOut,
)
from remit.wire.audit import AuditEventsOut, OcsfEventsOut, TraceOut, VerificationOut
from remit.wire.decisions import DecisionIn, DecisionOut, DpopIn
from remit.wire.policies import (
    ActivateIn,
    ActivationOut,
    ActivePolicySetOut,
    PolicyDetailOut,
    PolicyIn,
    PolicyOut,
    PolicySchemaOut,
    PolicyVersionOut,
)
from remit.wire.problem import Problem, error_from_problem
from remit.wire.registry import (
    AgentChange,
    AgentIn,
    AgentOut,
    FunctionChange,
    FunctionIn,
    FunctionOut,
    GrantIn,
    GrantOut,
    OffboardOut,
    OwnerChange,
    OwnerIn,
    OwnerOut,
    Page,
    ReasonIn,
    ToolChange,
    ToolIn,
    ToolOut,
    TraceabilityOut,
    UntraceableOut,
    WorkflowApproveIn,
    WorkflowChange,
    WorkflowIn,
    WorkflowOut,
)
from remit.wire.tasks import (
    AuthorizationDetailIn,
    CredentialOut,
    EvidenceIn,
    ReissueIn,
    TaskEnd,
    TaskIn,
    TaskOut,
    TaskStarted,
)

__all__ = ["DEFAULT_SERVER", "DEFAULT_TIMEOUT_SECONDS", "RemitClient", "paginate"]

DEFAULT_SERVER: Final = "http://127.0.0.1:8700"
DEFAULT_TIMEOUT_SECONDS: Final = 10.0

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# When a reply is not a problem document (a proxy in between, an old server), its status still says
# which family of error it was.
_ERROR_BY_STATUS: Final[Mapping[int, type[RemitError]]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def paginate(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Yield every item of a listing, following `next_cursor` until the last page."""
    after: str | None = None
    while True:
        page = fetch(after)
        yield from page.items
        if not page.next_cursor or page.next_cursor == after:
            return
        after = page.next_cursor


def _ref(ref: str) -> str:
    # A reference is an id, a name, an email or name@version: quote everything else so a ref can
    # never climb out of its path segment ("../owners").
    return quote(ref, safe="@")


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


class RemitClient:
    """A synchronous client for the Remit v1 API; use it as a context manager so the connection pool closes."""

    def __init__(
        self,
        base_url: str = DEFAULT_SERVER,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        issuer: str | None = None,
    ) -> None:
        """`issuer` is the server's `iss` (the audience of delegation credentials); by default it is discovered."""
        headers = {"Accept": "application/json, application/problem+json", "User-Agent": "remit-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._issuer = issuer
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ transport

    def url(self, path: str) -> str:
        """The absolute URL a request for `path` goes to: what a DPoP proof names as `htu`."""
        return self.base_url + path

    def _credential_headers(self, credential: str, dpop: DpopKey | None, method: str, path: str) -> dict[str, str]:
        """`Authorization` for the task's own credential; a DPoP-bound one also needs a fresh proof for this request."""
        if dpop is None:
            return {"Authorization": f"Bearer {credential}"}
        proof = dpop.proof(method, self.url(path), access_token=credential)
        return {"Authorization": f"DPoP {credential}", "DPoP": proof}

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, json=json, params=clean, headers=headers, **extra)
        except httpx.TimeoutException as exc:
            msg = f"the Remit server at {self.base_url} did not answer in time"
            raise Unavailable(msg) from exc
        except httpx.TransportError as exc:
            msg = f"could not reach the Remit server at {self.base_url} ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        if response.is_success:
            return response
        raise self._error(response)

    @staticmethod
    def _error(response: httpx.Response) -> RemitError:
        try:
            problem = Problem.model_validate_json(response.content)
        except ValidationError:
            cls = _ERROR_BY_STATUS.get(response.status_code, InternalError)
            return cls(f"the server answered HTTP {response.status_code} without a problem document")
        return error_from_problem(problem)

    def _call(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> M:
        response = self._request(method, path, json=None if body is None else _body(body), params=params)
        return _parse(model, response)

    def _page(self, model: type[M], path: str, *, limit: int | None, after: str | None) -> Page[M]:
        response = self._request("GET", path, params={"limit": limit, "after": after})
        return _parse(Page[model], response)  # type: ignore[valid-type]

    # ------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """GET /healthz: the server process is up."""
        body: dict[str, Any] = self._request("GET", "/healthz").json()
        return body

    def ready(self) -> dict[str, Any]:
        """GET /readyz: the server and its store are ready; Unavailable otherwise."""
        body: dict[str, Any] = self._request("GET", "/readyz").json()
        return body

    # ------------------------------------------------------------ owners

    def create_owner(self, owner: OwnerIn) -> OwnerOut:
        return self._call(OwnerOut, "POST", "/v1/owners", body=owner)

    def list_owners(self, *, limit: int | None = None, after: str | None = None) -> Page[OwnerOut]:
        return self._page(OwnerOut, "/v1/owners", limit=limit, after=after)

    def iter_owners(self) -> Iterator[OwnerOut]:
        return paginate(lambda after: self.list_owners(after=after))

    def get_owner(self, ref: str) -> OwnerOut:
        return self._call(OwnerOut, "GET", f"/v1/owners/{_ref(ref)}")

    def change_owner(self, ref: str, change: OwnerChange) -> OwnerOut:
        return self._call(OwnerOut, "PATCH", f"/v1/owners/{_ref(ref)}", body=change)

    def offboard_owner(self, ref: str, *, reason: str) -> OffboardOut:
        """Offboard an owner: their agents are suspended and their credentials revoked."""
        return self._call(OffboardOut, "POST", f"/v1/owners/{_ref(ref)}/offboard", body=ReasonIn(reason=reason))

    # ------------------------------------------------------------ business functions

    def create_function(self, function: FunctionIn) -> FunctionOut:
        return self._call(FunctionOut, "POST", "/v1/functions", body=function)

    def list_functions(self, *, limit: int | None = None, after: str | None = None) -> Page[FunctionOut]:
        return self._page(FunctionOut, "/v1/functions", limit=limit, after=after)

    def iter_functions(self) -> Iterator[FunctionOut]:
        return paginate(lambda after: self.list_functions(after=after))

    def get_function(self, ref: str) -> FunctionOut:
        return self._call(FunctionOut, "GET", f"/v1/functions/{_ref(ref)}")

    def change_function(self, ref: str, change: FunctionChange) -> FunctionOut:
        return self._call(FunctionOut, "PATCH", f"/v1/functions/{_ref(ref)}", body=change)

    # ------------------------------------------------------------ agents

    def create_agent(self, agent: AgentIn) -> AgentOut:
        return self._call(AgentOut, "POST", "/v1/agents", body=agent)

    def list_agents(self, *, limit: int | None = None, after: str | None = None) -> Page[AgentOut]:
        return self._page(AgentOut, "/v1/agents", limit=limit, after=after)

    def iter_agents(self) -> Iterator[AgentOut]:
        return paginate(lambda after: self.list_agents(after=after))

    def get_agent(self, ref: str) -> AgentOut:
        return self._call(AgentOut, "GET", f"/v1/agents/{_ref(ref)}")

    def change_agent(self, ref: str, change: AgentChange) -> AgentOut:
        return self._call(AgentOut, "PATCH", f"/v1/agents/{_ref(ref)}", body=change)

    def suspend_agent(self, ref: str, *, reason: str) -> AgentOut:
        return self._call(AgentOut, "POST", f"/v1/agents/{_ref(ref)}/suspend", body=ReasonIn(reason=reason))

    def retire_agent(self, ref: str, *, reason: str) -> AgentOut:
        return self._call(AgentOut, "POST", f"/v1/agents/{_ref(ref)}/retire", body=ReasonIn(reason=reason))

    def reactivate_agent(self, ref: str, *, reason: str) -> AgentOut:
        return self._call(AgentOut, "POST", f"/v1/agents/{_ref(ref)}/reactivate", body=ReasonIn(reason=reason))

    def agent_traceability(self, ref: str) -> TraceabilityOut:
        return self._call(TraceabilityOut, "GET", f"/v1/agents/{_ref(ref)}/traceability")

    def untraceable_agents(self) -> list[UntraceableOut]:
        """GET /v1/reports/untraceable: every agent without an active owner or a business function."""
        return _parse_items(UntraceableOut, self._request("GET", "/v1/reports/untraceable"))

    # ------------------------------------------------------------ tools

    def create_tool(self, tool: ToolIn) -> ToolOut:
        return self._call(ToolOut, "POST", "/v1/tools", body=tool)

    def list_tools(self, *, limit: int | None = None, after: str | None = None) -> Page[ToolOut]:
        return self._page(ToolOut, "/v1/tools", limit=limit, after=after)

    def iter_tools(self) -> Iterator[ToolOut]:
        return paginate(lambda after: self.list_tools(after=after))

    def get_tool(self, ref: str) -> ToolOut:
        return self._call(ToolOut, "GET", f"/v1/tools/{_ref(ref)}")

    def change_tool(self, ref: str, change: ToolChange) -> ToolOut:
        return self._call(ToolOut, "PATCH", f"/v1/tools/{_ref(ref)}", body=change)

    # ------------------------------------------------------------ workflows

    def create_workflow(self, workflow: WorkflowIn) -> WorkflowOut:
        """Create the next version of a workflow, as a draft."""
        return self._call(WorkflowOut, "POST", "/v1/workflows", body=workflow)

    def list_workflows(self, *, limit: int | None = None, after: str | None = None) -> Page[WorkflowOut]:
        return self._page(WorkflowOut, "/v1/workflows", limit=limit, after=after)

    def iter_workflows(self) -> Iterator[WorkflowOut]:
        return paginate(lambda after: self.list_workflows(after=after))

    def get_workflow(self, ref: str) -> WorkflowOut:
        """A workflow version by id or `name@version`."""
        return self._call(WorkflowOut, "GET", f"/v1/workflows/{_ref(ref)}")

    def change_workflow(self, ref: str, change: WorkflowChange) -> WorkflowOut:
        return self._call(WorkflowOut, "PATCH", f"/v1/workflows/{_ref(ref)}", body=change)

    def approve_workflow(self, ref: str, *, expected_hash: str | None = None) -> WorkflowOut:
        body = WorkflowApproveIn(expected_hash=expected_hash) if expected_hash else WorkflowApproveIn()
        return self._call(WorkflowOut, "POST", f"/v1/workflows/{_ref(ref)}/approve", body=body)

    def retire_workflow(self, ref: str, *, reason: str) -> WorkflowOut:
        return self._call(WorkflowOut, "POST", f"/v1/workflows/{_ref(ref)}/retire", body=ReasonIn(reason=reason))

    def workflow_versions(self, name: str) -> list[WorkflowOut]:
        """Every version of a workflow, oldest first."""
        return _parse_items(WorkflowOut, self._request("GET", f"/v1/workflows/{_ref(name)}/versions"))

    # ------------------------------------------------------------ standing grants

    def create_grant(self, grant: GrantIn) -> GrantOut:
        return self._call(GrantOut, "POST", "/v1/grants", body=grant)

    def list_grants(self, *, limit: int | None = None, after: str | None = None) -> Page[GrantOut]:
        return self._page(GrantOut, "/v1/grants", limit=limit, after=after)

    def iter_grants(self) -> Iterator[GrantOut]:
        return paginate(lambda after: self.list_grants(after=after))

    def delete_grant(self, grant_id: str) -> None:
        self._request("DELETE", f"/v1/grants/{_ref(grant_id)}")

    # ------------------------------------------------------------ policies

    def add_policy(self, policy: PolicyIn) -> PolicyVersionOut:
        """Add the next version of a Cedar policy (validated, not active yet); a 400 carries Cedar's diagnostics."""
        return self._call(PolicyVersionOut, "POST", "/v1/policies", body=policy)

    def list_policies(self, *, limit: int | None = None, after: str | None = None) -> Page[PolicyOut]:
        return self._page(PolicyOut, "/v1/policies", limit=limit, after=after)

    def iter_policies(self) -> Iterator[PolicyOut]:
        return paginate(lambda after: self.list_policies(after=after))

    def get_policy(self, name: str) -> PolicyDetailOut:
        """A policy and every one of its versions, oldest first."""
        return self._call(PolicyDetailOut, "GET", f"/v1/policies/{_ref(name)}")

    def get_policy_version(self, name: str, version: int) -> PolicyVersionOut:
        """One version of a policy, with its text."""
        return self._call(PolicyVersionOut, "GET", f"/v1/policies/{_ref(name)}/versions/{int(version)}")

    def activate_policy(self, name: str, version: int) -> ActivationOut:
        """Make `name@version` the policy's active version; returns the active set's new generation."""
        body = ActivateIn(version=version)
        return self._call(ActivationOut, "POST", f"/v1/policies/{_ref(name)}/activate", body=body)

    def deactivate_policy(self, name: str) -> ActivationOut:
        """Take a policy out of the active set; returns the active set's new generation."""
        return self._call(ActivationOut, "POST", f"/v1/policies/{_ref(name)}/deactivate")

    def active_policies(self) -> ActivePolicySetOut:
        """The active policy set: its generation and every active version."""
        return self._call(ActivePolicySetOut, "GET", "/v1/policies/active")

    def policy_schema(self) -> PolicySchemaOut:
        """The Cedar schema generated from the registry, which policies are validated against."""
        return self._call(PolicySchemaOut, "GET", "/v1/policies/schema")

    # ------------------------------------------------------------ tasks (the agent side)

    def start_task(
        self, declaration: TaskIn, *, dpop_proof: str | None = None, dpop: DpopKey | None = None
    ) -> TaskStarted:
        """POST /v1/tasks: attest with the declaration's evidence; returns the task and its first credential.

        With `dpop` (or a ready `dpop_proof`) the credential is bound to that key (RFC 9449 §5).
        """
        path = "/v1/tasks"
        proof = dpop_proof or (dpop.proof("POST", self.url(path)) if dpop else None)
        headers = {"DPoP": proof} if proof else None
        response = self._request("POST", path, json=_body(declaration), headers=headers)
        return _parse(TaskStarted, response)

    def reissue_credential(
        self,
        task_id: str,
        evidence: EvidenceIn,
        *,
        audience: str | None = None,
        dpop_proof: str | None = None,
        dpop: DpopKey | None = None,
    ) -> CredentialOut:
        """POST /v1/tasks/{id}/credentials: a new credential for a running task, with fresh evidence.

        With `dpop` (or a ready `dpop_proof`) the new credential is bound to that key; without, it is a Bearer one.
        """
        body = ReissueIn(evidence=evidence, audience=audience)
        path = f"/v1/tasks/{_ref(task_id)}/credentials"
        proof = dpop_proof or (dpop.proof("POST", self.url(path)) if dpop else None)
        headers = {"DPoP": proof} if proof else None
        response = self._request("POST", path, json=_body(body), headers=headers)
        return _parse(CredentialOut, response)

    def end_task(
        self, task_id: str, outcome: str, *, reason: str = "", credential: str, dpop: DpopKey | None = None
    ) -> TaskOut:
        """POST /v1/tasks/{id}/end with the task's own credential: every credential of the task dies."""
        body = TaskEnd.model_validate({"outcome": outcome, "reason": reason})
        path = f"/v1/tasks/{_ref(task_id)}/end"
        headers = self._credential_headers(credential, dpop, "POST", path)
        return _parse(TaskOut, self._request("POST", path, json=_body(body), headers=headers))

    def change_objective(
        self, task_id: str, objective: str, *, credential: str, dpop: DpopKey | None = None
    ) -> TaskOut:
        """POST /v1/tasks/{id}/objective: a context change that revokes every credential issued so far."""
        path = f"/v1/tasks/{_ref(task_id)}/objective"
        headers = self._credential_headers(credential, dpop, "POST", path)
        return _parse(TaskOut, self._request("POST", path, json={"objective": objective}, headers=headers))

    def issuer(self) -> str:
        """The server's `iss`, the audience of delegation credentials: configured, or from RFC 8414 metadata."""
        if self._issuer is None:
            metadata = self._request("GET", "/.well-known/oauth-authorization-server").json()
            issuer = metadata.get("issuer") if isinstance(metadata, dict) else None
            if not isinstance(issuer, str) or not issuer:
                msg = "the server's authorization server metadata names no issuer"
                raise InternalError(msg)
            self._issuer = issuer
        return self._issuer

    def revoke_credential(self, token: str) -> None:
        """POST /oauth2/revoke (RFC 7009): give a credential up before it expires."""
        try:
            response = self._http.post("/oauth2/revoke", data={"token": token}, headers={"Authorization": ""})
        except httpx.TransportError as exc:
            msg = f"could not reach the Remit server at {self.base_url} ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        if not response.is_success:
            raise self._error(response)

    # ------------------------------------------------------------ tasks and credentials (the operator side)

    def list_tasks(
        self,
        *,
        state: str | None = None,
        agent: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[TaskOut]:
        """GET /v1/tasks: tasks, newest id last, filtered by state and agent id (operator token)."""
        params = {"state": state, "agent": agent, "limit": limit, "after": after}
        return _parse(Page[TaskOut], self._request("GET", "/v1/tasks", params=params))

    def get_task(self, task_id: str) -> TaskOut:
        """GET /v1/tasks/{id} with the operator token."""
        return self._call(TaskOut, "GET", f"/v1/tasks/{_ref(task_id)}")

    def end_task_as_operator(self, task_id: str, outcome: str, *, reason: str = "") -> TaskOut:
        """POST /v1/tasks/{id}/end with the operator token: every credential of the task and its descendants dies."""
        body = TaskEnd.model_validate({"outcome": outcome, "reason": reason})
        return self._call(TaskOut, "POST", f"/v1/tasks/{_ref(task_id)}/end", body=body)

    def introspect(self, token: str) -> dict[str, Any]:
        """POST /oauth2/introspect (RFC 7662) with the operator token: `{"active": false}` or the claims."""
        response = self._form("/oauth2/introspect", {"token": token})
        try:
            body = response.json()
        except ValueError as exc:
            msg = "unexpected response from the server for POST /oauth2/introspect"
            raise InternalError(msg) from exc
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            msg = "unexpected response from the server for POST /oauth2/introspect"
            raise InternalError(msg)
        return body

    def revoke_token(self, token: str) -> None:
        """POST /oauth2/revoke (RFC 7009) as the operator: succeeds whether or not the token was valid."""
        self._form("/oauth2/revoke", {"token": token})

    # ------------------------------------------------------------ decisions (enforcement points)

    def decide(self, request: DecisionIn, *, explain: bool = False, dpop: DpopKey | None = None) -> DecisionOut:
        """POST /v1/decisions: the decision for one tool call (a deny is a value, not an exception).

        Raises only when no decision was made (bad request, `audit_unavailable`, server unreachable):
        an enforcement point must then not make the call. An agent asking for itself with a DPoP-bound
        credential passes its `dpop` key: the body then carries a fresh proof for this very request.
        """
        path = "/v1/decisions"
        if dpop is not None and request.dpop is None:
            url = self.url(path)
            proof = dpop.proof("POST", url, access_token=request.credential)
            request = request.model_copy(update={"dpop": DpopIn(proof=proof, method="POST", url=url)})
        params = {"explain": "true"} if explain else None
        return self._call(DecisionOut, "POST", path, body=request, params=params)

    # ------------------------------------------------------------ approvals and break-glass

    def list_approvals(
        self,
        *,
        state: str | None = None,
        task: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[ApprovalOut]:
        """GET /v1/approvals: approval requests, oldest first (approver, auditor or admin token)."""
        params = {"state": state, "task": task, "limit": limit, "after": after}
        return _parse(Page[ApprovalOut], self._request("GET", "/v1/approvals", params=params))

    def get_approval(
        self,
        approval_id: str,
        *,
        wait: float | None = None,
        credential: str | None = None,
        dpop: DpopKey | None = None,
    ) -> ApprovalOut:
        """GET /v1/approvals/{id}: `wait` long-polls while pending; `credential` is the agent's own task credential."""
        path = f"/v1/approvals/{_ref(approval_id)}"
        headers = self._credential_headers(credential, dpop, "GET", path) if credential else None
        timeout = None if not wait else wait + DEFAULT_TIMEOUT_SECONDS
        response = self._request("GET", path, params={"wait": wait}, headers=headers, timeout=timeout)
        return _parse(ApprovalOut, response)

    def approve(self, approval_id: str, *, reason: str = "") -> ApprovalOut:
        """POST /v1/approvals/{id}/approve with an approver account's token."""
        return self._call(
            ApprovalOut, "POST", f"/v1/approvals/{_ref(approval_id)}/approve", body=ApprovalAnswer(reason=reason)
        )

    def deny(self, approval_id: str, *, reason: str) -> ApprovalOut:
        """POST /v1/approvals/{id}/deny with an approver account's token; the reason is required."""
        return self._call(
            ApprovalOut, "POST", f"/v1/approvals/{_ref(approval_id)}/deny", body=ApprovalAnswer(reason=reason)
        )

    def break_glass(self, grant: BreakGlassIn) -> ApprovalOut:
        """POST /v1/breakglass: self-grant a short elevation (break-glass account); loud and reviewed."""
        return self._call(ApprovalOut, "POST", "/v1/breakglass", body=grant)

    def list_break_glass(
        self, *, unreviewed: bool = False, limit: int | None = None, after: str | None = None
    ) -> Page[ApprovalOut]:
        """GET /v1/breakglass: break-glass grants, optionally only those whose review is open."""
        params = {"unreviewed": "true" if unreviewed else None, "limit": limit, "after": after}
        return _parse(Page[ApprovalOut], self._request("GET", "/v1/breakglass", params=params))

    def review_break_glass(self, approval_id: str, *, notes: str) -> ApprovalOut:
        """POST /v1/breakglass/{id}/review: close the post-use review (auditor account)."""
        return self._call(
            ApprovalOut, "POST", f"/v1/breakglass/{_ref(approval_id)}/review", body=BreakGlassReview(notes=notes)
        )

    # ------------------------------------------------------------ operator accounts (admin)

    def add_operator(self, operator: OperatorIn) -> OperatorCreated:
        """POST /v1/operators: the account and its token, shown once."""
        return self._call(OperatorCreated, "POST", "/v1/operators", body=operator)

    def list_operators(self, *, limit: int | None = None, after: str | None = None) -> Page[OperatorOut]:
        return self._page(OperatorOut, "/v1/operators", limit=limit, after=after)

    def disable_operator(self, name: str, *, reason: str) -> OperatorOut:
        body = OperatorDisableIn(reason=reason)
        return self._call(OperatorOut, "POST", f"/v1/operators/{_ref(name)}/disable", body=body)

    # ------------------------------------------------------------ audit (the operator side)

    def trace_task(self, task_id: str) -> TraceOut:
        """GET /v1/tasks/{id}/trace: the task and its descendants' audit records, by sequence (operator token)."""
        return self._call(TraceOut, "GET", f"/v1/tasks/{_ref(task_id)}/trace")

    def audit_events(
        self,
        *,
        after_seq: int = 0,
        task: str | None = None,
        agent: str | None = None,
        types: Sequence[str] = (),
        limit: int | None = None,
    ) -> AuditEventsOut:
        """GET /v1/audit/events: records after `after_seq` in sequence order, filtered by task, agent and types."""
        params = {"after_seq": after_seq, "task": task, "agent": agent, "type": list(types) or None, "limit": limit}
        return self._call(AuditEventsOut, "GET", "/v1/audit/events", params=params)

    def audit_ocsf(
        self,
        *,
        after_seq: int = 0,
        task: str | None = None,
        agent: str | None = None,
        types: Sequence[str] = (),
        limit: int | None = None,
    ) -> OcsfEventsOut:
        """GET /v1/audit/ocsf: the same records as OCSF 1.8.0 events."""
        params = {"after_seq": after_seq, "task": task, "agent": agent, "type": list(types) or None, "limit": limit}
        return self._call(OcsfEventsOut, "GET", "/v1/audit/ocsf", params=params)

    def verify_audit(self) -> VerificationOut:
        """GET /v1/audit/verify: verify the whole chain; `ok`, or the first fault with its sequence."""
        return self._call(VerificationOut, "GET", "/v1/audit/verify")

    def audit_checkpoints(self) -> list[dict[str, Any]]:
        """GET /v1/audit/checkpoints: every signed checkpoint, to anchor elsewhere."""
        body = self._request("GET", "/v1/audit/checkpoints").json()
        if not isinstance(body, list):
            msg = "unexpected response from the server for GET /v1/audit/checkpoints"
            raise InternalError(msg)
        return body

    def create_audit_checkpoint(self) -> dict[str, Any]:
        """POST /v1/audit/checkpoints: sign a checkpoint of the head now (`created` false when already signed)."""
        body = self._request("POST", "/v1/audit/checkpoints").json()
        if not isinstance(body, dict):
            msg = "unexpected response from the server for POST /v1/audit/checkpoints"
            raise InternalError(msg)
        return body

    def _form(self, path: str, data: Mapping[str, str]) -> httpx.Response:
        # The OAuth endpoints take form bodies; the token travels only in the body, never in an error message.
        try:
            response = self._http.post(path, data=data)
        except httpx.TimeoutException as exc:
            msg = f"the Remit server at {self.base_url} did not answer in time"
            raise Unavailable(msg) from exc
        except httpx.TransportError as exc:
            msg = f"could not reach the Remit server at {self.base_url} ({type(exc).__name__})"
            raise Unavailable(msg) from exc
        if not response.is_success:
            raise self._error(response)
        return response

    def task(  # noqa: PLR0913 - the declaration's parts, each named
        self,
        *,
        evidence: EvidenceSource,
        workflow: str,
        objective: str,
        tools: Mapping[str, Sequence[str]] | Sequence[AuthorizationDetailIn],
        resources: Sequence[str] = (),
        expected_duration_seconds: int,
        environment: str,
        audience: str,
        principal: str | None = None,
        dpop: bool | DpopKey = False,
    ) -> TaskSession:
        """`with client.task(...) as task:` — declare, hold the credential, complete on exit or fail on an exception.

        `tools` is either {tool: [actions]} applied to `resources`, or explicit RFC 9396 details.
        `dpop=True` binds the credential to a fresh P-256 key (RFC 9449; needs `remit[dpop]`), or pass
        a `DpopKey` to use one you keep; every use of the credential then carries a fresh proof.
        """
        key = dpop_key_for(dpop)
        details = authorization_details(tools, resources)
        declaration = TaskIn(
            evidence=evidence.evidence(),
            workflow=workflow,
            objective=objective,
            authorization_details=details,
            expected_duration_seconds=expected_duration_seconds,
            environment=environment,
            audience=audience,
            principal=principal,
        )
        return TaskSession(self, declaration, evidence, dpop=key)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        msg = f"unexpected response from the server for {response.request.method} {response.request.url.path}"
        raise InternalError(msg) from exc


def _parse_items(model: type[M], response: httpx.Response) -> list[M]:
    """A bare list, or a page/object with `items` (so a later paginated form stays readable)."""
    try:
        raw = response.json()
        if isinstance(raw, dict):
            raw = raw.get("items", raw)
        return TypeAdapter(list[model]).validate_python(raw)  # type: ignore[valid-type]
    except (ValueError, ValidationError) as exc:
        msg = f"unexpected response from the server for {response.request.method} {response.request.url.path}"
        raise InternalError(msg) from exc

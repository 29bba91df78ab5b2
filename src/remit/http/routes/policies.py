"""The /v1/policies routes: add Cedar policy versions, list and show them, activate and deactivate, the schema.

Handlers only translate: wire input → one `PolicyService` call with the authenticated operator as
`actor` → wire output. A policy that does not validate is a 400 whose `errors` carry Cedar's
diagnostics, each under the policy's `@id`.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from remit.core.authorization.policies import MAX_PAGE, PolicyDocument, PolicyService, PolicyVersion
from remit.core.registry.models import Page as CorePage
from remit.http.problems import problem_responses
from remit.wire.policies import (
    ActivateIn,
    ActivationOut,
    ActivePolicySetOut,
    PolicyDetailOut,
    PolicyIn,
    PolicyOut,
    PolicySchemaOut,
    PolicyVersionOut,
    PolicyVersionSummary,
)
from remit.wire.registry import Page

__all__ = ["PolicyController"]

DEFAULT_PAGE: Final = 100
MAX_CURSOR: Final = 63

_COMMON: Final = (400, 401, 503)
_READ = problem_responses(*_COMMON, 404)
_LIST = problem_responses(*_COMMON)
_CREATE = problem_responses(*_COMMON, 409, 413)
_CHANGE = problem_responses(*_COMMON, 404, 409, 413)

_Name = Parameter(min_length=1, max_length=63, description="policy name")
_Version = Parameter(ge=1, le=999_999_999, description="version number")
_Limit = Parameter(
    default=DEFAULT_PAGE, ge=1, le=MAX_PAGE, description=f"page size, 1-{MAX_PAGE} (default {DEFAULT_PAGE})"
)
_After = Parameter(
    default=None, min_length=1, max_length=MAX_CURSOR, description="cursor: `next_cursor` of the previous page"
)


def _summary(version: PolicyVersion, *, active: bool) -> dict[str, Any]:
    return {
        "id": version.id,
        "name": version.name,
        "version": version.version,
        "ref": version.ref,
        "sha256": version.sha256,
        "description": version.description,
        "created_by": version.created_by,
        "created_at": version.created_at,
        "active": active,
    }


def _version_out(version: PolicyVersion, *, active: bool) -> PolicyVersionOut:
    return PolicyVersionOut(**_summary(version, active=active), text=version.text)


def _policy_fields(document: PolicyDocument) -> dict[str, Any]:
    return {
        "name": document.name,
        "latest_version": document.latest_version,
        "active_version": document.active_version,
        "active_ref": document.active_ref,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
        "activated_by": document.activated_by,
        "activated_at": document.activated_at,
    }


def _policy_out(document: PolicyDocument) -> PolicyOut:
    return PolicyOut(**_policy_fields(document))


def _page_out(page: CorePage[PolicyDocument]) -> Page[PolicyOut]:
    return Page[PolicyOut](items=[_policy_out(d) for d in page.items], next_cursor=page.next_cursor)


class PolicyController(Controller):
    """Cedar policies: versioned, validated against the registry's schema on write, activated one version per name."""

    path = "/policies"
    tags = ["policies"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(
        status_code=201,
        sync_to_thread=True,
        response_headers=[
            ResponseHeader(name="Location", description="path of the created version", documentation_only=True)
        ],
        responses=_CREATE,
    )
    def add_policy(
        self, data: JSONBody[PolicyIn], policies: NamedDependency[PolicyService], actor: NamedDependency[str]
    ) -> Response[PolicyVersionOut]:
        """Add the next version of a policy after validating it against the schema; it is not active yet."""
        version = policies.add(name=data.name, text=data.text, description=data.description, actor=actor)
        return Response(
            content=_version_out(version, active=False),
            status_code=201,
            headers={"Location": f"/v1/policies/{version.name}/versions/{version.version}"},
        )

    @get(sync_to_thread=True, responses=_LIST)
    def list_policies(
        self, policies: NamedDependency[PolicyService], limit: int = _Limit, after: str | None = _After
    ) -> Page[PolicyOut]:
        """List policies by name, with their active version."""
        return _page_out(policies.list(limit=limit, after=after))

    @get("/schema", sync_to_thread=True, responses=_LIST)
    def policy_schema(self, policies: NamedDependency[PolicyService]) -> PolicySchemaOut:
        """The Cedar schema generated from the registry's tools: what every policy is validated against."""
        schema = policies.schema()
        return PolicySchemaOut(cedar=schema.text, cedar_json=schema.json)

    @get("/active", sync_to_thread=True, responses=_LIST)
    def active_policies(self, policies: NamedDependency[PolicyService]) -> ActivePolicySetOut:
        """The active policy set: its generation and every active version."""
        active = policies.active_set()
        return ActivePolicySetOut(
            generation=active.generation,
            version=active.version,
            policies=[PolicyVersionSummary(**_summary(v, active=True)) for v in active.versions],
        )

    @get("/{name:str}", sync_to_thread=True, responses=_READ)
    def get_policy(self, policies: NamedDependency[PolicyService], name: str = _Name) -> PolicyDetailOut:
        """A policy and every one of its versions, oldest first."""
        document, versions = policies.versions(name)
        return PolicyDetailOut(
            **_policy_fields(document),
            versions=[
                PolicyVersionSummary(**_summary(v, active=v.version == document.active_version)) for v in versions
            ],
        )

    @get("/{name:str}/versions/{version:int}", sync_to_thread=True, responses=_READ)
    def get_policy_version(
        self, policies: NamedDependency[PolicyService], name: str = _Name, version: int = _Version
    ) -> PolicyVersionOut:
        """One version of a policy, with its Cedar text."""
        document = policies.get(name)
        found = policies.get_version(name, version)
        return _version_out(found, active=document.active_version == found.version)

    @post("/{name:str}/activate", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def activate_policy(
        self,
        data: JSONBody[ActivateIn],
        policies: NamedDependency[PolicyService],
        actor: NamedDependency[str],
        name: str = _Name,
    ) -> ActivationOut:
        """Make a version the active one (validated again against the current schema); the generation moves."""
        document, generation = policies.activate(name, data.version, actor=actor)
        return ActivationOut(policy=_policy_out(document), generation=generation)

    @post("/{name:str}/deactivate", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def deactivate_policy(
        self, policies: NamedDependency[PolicyService], actor: NamedDependency[str], name: str = _Name
    ) -> ActivationOut:
        """Take the policy out of the active set; the set's generation moves."""
        document, generation = policies.deactivate(name, actor=actor)
        return ActivationOut(policy=_policy_out(document), generation=generation)

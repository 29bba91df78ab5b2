"""`create_app(remit)`: the Litestar application, its routers, dependencies, error handling and OpenAPI."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from remit import __version__
from remit.bootstrap import Remit
from remit.core.authorization.policies import PolicyService
from remit.core.registry.service import RegistryService
from remit.http.auth import audit_reader_guard, operator_actor, operator_guard
from remit.http.boundary import Boundary
from remit.http.fast import FastRoutes
from remit.http.metrics import HttpMetrics
from remit.http.problems import exception_handlers
from remit.http.routes import decisions, health, oauth
from remit.http.routes.approvals import ApprovalController, BreakGlassController, OperatorController
from remit.http.routes.audit import AuditController, trace
from remit.http.routes.policies import PolicyController
from remit.http.routes.registry import (
    AgentController,
    FunctionController,
    GrantController,
    OwnerController,
    ReportController,
    ToolController,
    WorkflowController,
)
from remit.http.routes.tasks import TaskController

__all__ = ["create_app"]

OPERATOR_SCHEME = "operatorToken"


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Remit API",
        version=__version__,
        description=(
            "Registry of owners, business functions, agents, tools, workflows and standing grants. "
            "Every error is an RFC 9457 `application/problem+json` document with a stable `code`."
        ),
        path="/schema",
        # Only machine-readable documents: no HTML page pulling scripts from elsewhere.
        render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
        components=Components(
            security_schemes={
                OPERATOR_SCHEME: SecurityScheme(
                    type="http", scheme="bearer", description="the operator token (`remit serve` prints where it is)"
                )
            }
        ),
        tags=[
            Tag(name=name, description=text)
            for name, text in (
                ("owners", "accountable humans"),
                ("functions", "business functions: why agents exist"),
                ("agents", "workload identities traced to an owner and a function"),
                ("tools", "actions with risk classes, resources with sensitivities"),
                ("workflows", "versioned, approved lists of what a task may do"),
                ("grants", "standing grants: reads of public or internal resources only"),
                ("policies", "Cedar policies: versioned, validated against the registry's schema, activated by name"),
                ("reports", "registry reports"),
                ("tasks", "tasks and their credentials: declared by attested agents"),
                ("approvals", "step-up approvals, elevations and break-glass: answered by people, never agents"),
                ("operators", "operator accounts: people with roles (admin, approver, auditor, break-glass)"),
                ("audit", "the hash-chained audit log: traces, verification, export and checkpoints"),
                ("oauth", "RFC 8693 token exchange, RFC 7662 introspection, RFC 7009 revocation"),
                ("discovery", "JWKS and RFC 8414 metadata"),
                ("health", "liveness, readiness and metrics"),
            )
        ],
        use_handler_docstrings=True,
    )


def create_app(remit: Remit) -> Litestar:
    """Build the ASGI application for a wired `Remit`; the caller owns (and closes) `remit`."""
    metrics = HttpMetrics()

    def provide_remit() -> Remit:
        return remit

    def provide_registry() -> RegistryService:
        return remit.registry

    def provide_policies() -> PolicyService:
        return remit.policies

    def provide_metrics() -> HttpMetrics:
        return metrics

    v1 = Router(
        path="/v1",
        route_handlers=[
            OwnerController,
            FunctionController,
            AgentController,
            ReportController,
            ToolController,
            WorkflowController,
            GrantController,
            PolicyController,
            OperatorController,
        ],
        guards=[operator_guard],
        security=[{OPERATOR_SCHEME: []}],
        dependencies={"actor": Provide(operator_actor, sync_to_thread=False)},
    )
    # The audit trail is also readable by auditors, who may change nothing else.
    v1_audit = Router(
        path="/v1",
        route_handlers=[AuditController],
        guards=[audit_reader_guard],
        security=[{OPERATOR_SCHEME: []}],
        dependencies={"actor": Provide(operator_actor, sync_to_thread=False)},
    )
    app = Litestar(
        route_handlers=[
            v1,
            v1_audit,
            TaskController,
            ApprovalController,
            BreakGlassController,
            trace,
            decisions.decide,
            decisions.evaluation,
            decisions.evaluations,
            decisions.authzen_configuration,
            oauth.token,
            oauth.introspect,
            oauth.revoke,
            oauth.jwks,
            oauth.metadata,
            health.healthz,
            health.readyz,
            health.metrics,
        ],
        # Catch up on revocations and start the revocation feed and sweeper with the server.
        on_startup=[remit.start],
        dependencies={
            "remit": Provide(provide_remit, sync_to_thread=False, use_cache=True),
            "registry": Provide(provide_registry, sync_to_thread=False, use_cache=True),
            "policies": Provide(provide_policies, sync_to_thread=False, use_cache=True),
            "http_metrics": Provide(provide_metrics, sync_to_thread=False, use_cache=True),
        },
        exception_handlers=exception_handlers(),
        request_max_body_size=remit.settings.server.max_body_bytes,
        openapi_config=_openapi(),
        state=State({"remit": remit}),
        logging_config=None,
        debug=False,
    )
    # The hot routes (decisions, task issuance) answer well-formed requests before the framework (`http.fast`).
    fast = FastRoutes(app.asgi_handler, remit, max_body_bytes=remit.settings.server.max_body_bytes)
    app.asgi_handler = Boundary(fast, metrics)
    return app

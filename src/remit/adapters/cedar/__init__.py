"""Cedar policies: the schema generated from the registry, validation, and the policy engine (cedarpy)."""

from __future__ import annotations

from remit.adapters.cedar.engine import (
    ActivePolicySource,
    CedarPolicyEngine,
    CompiledPolicies,
    EntityCache,
    build_entities,
    compile_policies,
)
from remit.adapters.cedar.schema import RISK_GROUPS, CedarPolicyValidator, action_id, cedar_schema
from remit.adapters.cedar.translate import cedar_context, cedar_entities, cedar_request, resource_id

__all__ = [
    "RISK_GROUPS",
    "ActivePolicySource",
    "CedarPolicyEngine",
    "CedarPolicyValidator",
    "CompiledPolicies",
    "EntityCache",
    "action_id",
    "build_entities",
    "cedar_context",
    "cedar_entities",
    "cedar_request",
    "cedar_schema",
    "compile_policies",
    "resource_id",
]

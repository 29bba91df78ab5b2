"""Per-call decisions: guardrails no policy can loosen, then Cedar policies, one `Decision` with reasons."""

"""Tasks: one unit of an agent's work, with a declared objective, scope and deadline."""

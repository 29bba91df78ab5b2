"""The audit trail: one append-only record of everything Remit issues, decides and changes."""

"""Approvals: human step-up approval of high-risk calls, just-in-time elevations, operator accounts, break-glass."""

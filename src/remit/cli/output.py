"""How the CLI speaks: exit code per ErrorCode, one-line errors on stderr, tables (rich) or wire JSON on stdout."""

from __future__ import annotations

import json
import sys

from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from remit.errors import ErrorCode, RemitError

__all__ = [
    "EXIT_CODE_BY_CODE",
    "EXIT_OK",
    "Column",
    "OutputFormat",
    "Printer",
    "exit_code_for",
    "format_error",
]

EXIT_OK: Final = 0
_PIPED_WIDTH: Final = 400

# One table per entrypoint (ARCHITECTURE.md §3): the CLI exit code of every ErrorCode.
# 1 is a bug, 2 bad input, 3 who-are-you, 4 not-allowed, 5 not-found, 6 state conflict,
# 7 try-again-later. payload_too_large and method_not_allowed say the request itself must change
# (too big; a method this server does not offer, i.e. a client/server version mismatch), so 2.
EXIT_CODE_BY_CODE: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.INTERNAL: 1,
    ErrorCode.INVALID_REQUEST: 2,
    ErrorCode.PAYLOAD_TOO_LARGE: 2,
    ErrorCode.METHOD_NOT_ALLOWED: 2,
    ErrorCode.UNAUTHENTICATED: 3,
    ErrorCode.CREDENTIAL_EXPIRED: 3,
    ErrorCode.CREDENTIAL_REVOKED: 3,
    ErrorCode.CREDENTIAL_INVALID: 3,
    ErrorCode.ATTESTATION_FAILED: 3,
    ErrorCode.FORBIDDEN: 4,
    ErrorCode.AGENT_UNTRACEABLE: 4,
    ErrorCode.DENIED: 4,
    ErrorCode.APPROVAL_REQUIRED: 4,
    ErrorCode.APPROVAL_DENIED: 4,
    ErrorCode.APPROVAL_EXPIRED: 4,
    ErrorCode.NOT_FOUND: 5,
    ErrorCode.CONFLICT: 6,
    ErrorCode.TASK_NOT_ACTIVE: 6,
    ErrorCode.RATE_LIMITED: 7,
    ErrorCode.UNAVAILABLE: 7,
    ErrorCode.AUDIT_UNAVAILABLE: 7,
}


def exit_code_for(error: RemitError) -> int:
    """The exit code for an error; an unknown code (from a newer server) exits 1."""
    return EXIT_CODE_BY_CODE.get(error.code, 1)


def format_error(error: RemitError) -> str:
    """`error[code]: message`, then `; loc: msg` per failed field: always one line."""
    message = " ".join(error.message.split())
    parts = [f"error[{error.code.value}]: {message}"]
    for field in error.errors:
        detail = " ".join(field.msg.split())
        if detail == message:  # a single-field error whose text is already the message
            continue
        loc = ".".join(str(p) for p in field.loc) or "body"
        parts.append(f"{loc}: {detail}")
    return "; ".join(parts)


class OutputFormat(StrEnum):
    """How results are printed."""

    TABLE = "table"
    JSON = "json"


Column = tuple[str, Callable[[Any], object]]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


class Printer:
    """Writes results to stdout and errors to stderr in the chosen format."""

    def __init__(self, output: OutputFormat = OutputFormat.TABLE) -> None:
        self.output = output
        # Piped output (grep, awk) keeps one row per line: only a terminal wraps to its width.
        piped_width = None if sys.stdout.isatty() else _PIPED_WIDTH
        self.out = Console(soft_wrap=True, highlight=False, width=piped_width)
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    @property
    def is_json(self) -> bool:
        return self.output is OutputFormat.JSON

    def json(self, document: object) -> None:
        """One JSON document on stdout, exactly the wire JSON."""
        if isinstance(document, BaseModel):
            document = document.model_dump(mode="json")
        elif isinstance(document, list):
            document = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in document]
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def error(self, error: RemitError) -> None:
        self.err.print(escape(format_error(error)), markup=True)

    def note(self, message: str) -> None:
        """A human line: stdout for tables, stderr for JSON so stdout stays one document."""
        (self.err if self.is_json else self.out).print(message, markup=True)

    def record(self, model: BaseModel, *, title: str | None = None) -> None:
        """One object: JSON, or a two-column field/value table."""
        if self.is_json:
            self.json(model)
            return
        table = Table(title=title, show_header=False, box=None, pad_edge=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in model.model_dump(mode="json").items():
            table.add_row(key, escape(_describe(value)))
        self.out.print(table)

    def rows(self, items: Sequence[BaseModel], columns: Sequence[Column], *, next_cursor: str | None = None) -> None:
        """A listing: JSON `{"items": [...], "next_cursor": …}`, or a table with one row per item."""
        if self.is_json:
            self.json({"items": [i.model_dump(mode="json") for i in items], "next_cursor": next_cursor})
            return
        table = Table(show_edge=False, pad_edge=False)
        for name, _ in columns:
            table.add_column(name, overflow="fold")
        for item in items:
            table.add_row(*(escape(_cell(get(item))) for _, get in columns))
        self.out.print(table)
        if not items:
            self.out.print("(none)")
        if next_cursor:
            self.out.print(f"more: --after {escape(next_cursor)}")


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_describe(v)}" for k, v in value.items() if v not in (None, "", [], {})) or "-"
    if isinstance(value, list):
        return "; ".join(_describe(v) for v in value) or "-"
    return _cell(value)

"""Helpers shared by the command modules: listing with pagination, and the common options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import typer

from pydantic import BaseModel

from remit.cli.context import state
from remit.cli.output import Column
from remit.errors import InvalidRequest
from remit.sdk.client import RemitClient, paginate
from remit.wire.registry import Page

__all__ = ["AfterOption", "LimitOption", "ReasonOption", "RevisionOption", "list_items", "require_change"]

M = TypeVar("M", bound=BaseModel)

LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, max=500, help="Show one page of at most this many (default: all).")
]
AfterOption = Annotated[
    str | None, typer.Option("--after", help="Start after this cursor (the next_cursor of a previous page).")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail.")]
RevisionOption = Annotated[
    int | None,
    typer.Option("--expected-revision", min=1, help="Refuse (conflict) if someone changed it since this revision."),
]


def list_items(
    ctx: typer.Context,
    fetch: Callable[[RemitClient, int | None, str | None], Page[M]],
    columns: Sequence[Column],
    *,
    limit: int | None,
    after: str | None,
) -> None:
    """Print one page when --limit or --after is given, otherwise every page (following next_cursor)."""
    cli = state(ctx)
    with cli.client() as client:
        if limit is not None or after is not None:
            page = fetch(client, limit, after)
            cli.printer.rows(page.items, columns, next_cursor=page.next_cursor)
            return
        items = list(paginate(lambda cursor: fetch(client, None, cursor)))
    cli.printer.rows(items, columns)


def require_change(**values: object) -> dict[str, object]:
    """The options that were given; none at all is InvalidRequest (a change must change something)."""
    given = {k: v for k, v in values.items() if v is not None and v != []}
    if not given or set(given) == {"expected_revision"}:
        msg = "nothing to change: give at least one option"
        raise InvalidRequest(msg)
    return given

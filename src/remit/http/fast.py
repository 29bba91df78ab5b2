"""The hot routes without the framework's per-request work, for a request that is certainly well formed.

`POST /v1/decisions` and `POST /access/v1/evaluation` answer every tool call of every agent, and
`POST /v1/tasks` starts every task. For these, the framework's own work per request (routing, the
signature model, dependency injection, response objects) cost about as much as the decision itself.
This ASGI layer sits inside the boundary (security headers, log line and metrics still apply) and
answers a well-formed request directly, through the same models and the same functions as the
framework's routes (`routes.decisions`, `routes.tasks`). Anything else goes to the framework
unchanged, body included: a query string (`?explain`), a body that is not JSON or not of the model's
shape, another media type, a missing length, a body over the limit. So each refusal a client can
see still comes from one place, and the OpenAPI document still describes every route.
"""

from __future__ import annotations

import logging

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from pydantic import BaseModel, ValidationError

from remit.bootstrap import Remit
from remit.errors import InternalError, RemitError
from remit.http.problems import CORRELATION_STATE_KEY, ERROR_CODE_STATE_KEY, PROBLEM_MEDIA_TYPE, problem_parts
from remit.http.routes.decisions import answer_decision, answer_evaluation, request_id_of
from remit.http.routes.tasks import start_task
from remit.wire.decisions import AuthzenEvaluationIn, DecisionIn
from remit.wire.tasks import TaskIn

__all__ = ["Call", "FastRoutes"]

_log = logging.getLogger("remit.http")

_JSON: Final = b"application/json"


@dataclass(frozen=True, slots=True)
class Call:
    """What a fast route reads of its request besides the body."""

    path: str
    request_id: str | None  # the caller's X-Request-ID, when short and printable
    dpop: str | None  # the DPoP header


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: BaseModel
    headers: Mapping[str, str]


async def _decision(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    return _Answer(200, await answer_decision(remit, data, call.request_id), {})


async def _evaluation(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    echo = {"x-request-id": call.request_id} if call.request_id else {}
    return _Answer(200, await answer_evaluation(remit, data, call.request_id), echo)


async def _task(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    body, headers = await start_task(remit, data, dpop=call.dpop, path=call.path)
    return _Answer(201, body, headers)


@dataclass(frozen=True, slots=True)
class _Route:
    model: type[BaseModel]
    answer: Callable[[Remit, Any, Call], Awaitable[_Answer]]


_ROUTES: Final[dict[str, _Route]] = {
    "/v1/decisions": _Route(DecisionIn, _decision),
    "/access/v1/evaluation": _Route(AuthzenEvaluationIn, _evaluation),
    "/v1/tasks": _Route(TaskIn, _task),
}


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == _JSON


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then whatever the connection says next."""
    given = False

    async def replayed() -> ReceiveMessage:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class FastRoutes:
    """ASGI wrapper: answers the decision routes for well-formed requests, passes everything else on."""

    def __init__(self, app: ASGIApp, remit: Remit, *, max_body_bytes: int) -> None:
        self._app = app
        self._remit = remit
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: dict[str, Any] = scope  # type: ignore[assignment]
        route = None
        if raw["type"] == "http" and raw["method"] == "POST" and not raw.get("query_string"):
            route = _ROUTES.get(raw["path"])
        if route is None:
            await self._app(scope, receive, send)
            return
        call = self._call(raw)
        if call is None:
            await self._app(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            return  # the client went away before its body arrived: nobody to answer
        try:
            data = route.model.model_validate(msgspec.json.decode(body))
        except (msgspec.DecodeError, ValidationError):
            await self._app(scope, _replay(body, receive), send)
            return
        raw["path_template"] = raw["path"]  # the boundary's metrics and log line name the route
        try:
            answer = await route.answer(self._remit, data, call)
        except RemitError as error:
            await self._problem(raw, send, error)
            return
        except Exception:  # noqa: BLE001 - a bug answers `internal` with its log line's id, like every route
            state = raw.get("state", {})
            _log.exception(
                "unhandled error on POST %s (correlation id %s)",
                raw["path"],
                state.get(CORRELATION_STATE_KEY),
                extra={"correlation_id": state.get(CORRELATION_STATE_KEY), "method": "POST", "path": raw["path"]},
            )
            await self._problem(raw, send, InternalError("an internal error occurred; it has been logged"))
            return
        headers = [(b"content-type", _JSON)]
        headers += [(name.encode(), value.encode()) for name, value in answer.headers.items()]
        await self._respond(send, answer.status, headers, answer.body.model_dump_json().encode())

    def _call(self, scope: dict[str, Any]) -> Call | None:
        """The request's particulars when it is JSON within the limit, its length declared; else None."""
        content_type = length = request_id = dpop = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"dpop":
                dpop = value
        if content_type is None or not _is_json(content_type) or length is None or not length.isdigit():
            return None
        if int(length) > self._max_body:
            return None
        return Call(
            path=scope["path"],
            request_id=request_id_of(request_id.decode("latin-1")) if request_id is not None else None,
            dpop=dpop.decode("latin-1") if dpop is not None else None,
        )

    @staticmethod
    async def _read(receive: Receive) -> bytes | None:
        # The server frames the body by its Content-Length, already checked against the limit.
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _problem(scope: dict[str, Any], send: Send, error: RemitError) -> None:
        state = scope.setdefault("state", {})
        state[ERROR_CODE_STATE_KEY] = error.code.value
        status, problem, extra = problem_parts(
            error, instance=scope["path"], correlation_id=state.get(CORRELATION_STATE_KEY)
        )
        headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]
        headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        await FastRoutes._respond(send, status, headers, msgspec.json.encode(problem.model_dump(mode="json")))

    @staticmethod
    async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

"""The hot routes without the framework's per-request work, for a request that is certainly well formed.

`POST /v1/decisions` and `POST /access/v1/evaluation` answer every tool call of every agent,
`POST /v1/tasks` and `POST /oauth2/token` (its RFC 8693 door) start every task, and `POST /oauth2/revoke`
ends credentials (a holder's RFC 7009 revocation, without an `Authorization` header; an operator's goes to
the framework). For these, the framework's own work per request (routing, the signature model, dependency
injection, response objects) cost about as much as the work itself. This ASGI layer sits inside the
boundary (security headers, log line and metrics still apply) and answers a well-formed request directly,
through the same models and the same functions as the framework's routes (`routes.decisions`,
`routes.tasks`, `routes.oauth`). Anything else goes to the framework unchanged, body included: a query
string (`?explain`), a body that is not JSON (for the OAuth routes: not a form, or a name given twice; for
the revocation, anything but one `token`) or not of the model's shape, another media type, a missing
length, a body over the limit. So each refusal a client can see still comes from one place, and the
OpenAPI document still describes every route.
"""

from __future__ import annotations

import logging

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec

from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from pydantic import BaseModel, ValidationError

from remit.bootstrap import Remit
from remit.errors import InternalError, RemitError
from remit.http.auth import bearer_token
from remit.http.problems import CORRELATION_STATE_KEY, ERROR_CODE_STATE_KEY, PROBLEM_MEDIA_TYPE, problem_parts
from remit.http.routes.decisions import answer_decision, answer_evaluation, request_id_of
from remit.http.routes.oauth import NO_STORE, exchange_token, introspection_of, revoke_presented
from remit.http.routes.tasks import start_task
from remit.wire.decisions import AuthzenEvaluationIn, DecisionIn
from remit.wire.tasks import TaskIn

__all__ = ["Call", "FastRoutes"]

_log = logging.getLogger("remit.http")

_JSON: Final = b"application/json"
_FORM: Final = b"application/x-www-form-urlencoded"
_NULL: Final = b"null"  # what the framework's route answers a revocation with (Response(None))


@dataclass(frozen=True, slots=True)
class Call:
    """What a fast route reads of its request besides the body."""

    path: str
    request_id: str | None  # the caller's X-Request-ID, when short and printable
    dpop: str | None  # the DPoP header
    authorization: str | None = field(default=None, repr=False)  # the Authorization header: a secret


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: BaseModel | None  # None renders as JSON `null`, as the framework renders Response(None)
    headers: Mapping[str, str]


async def _decision(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    return _Answer(200, await answer_decision(remit, data, call.request_id), {})


async def _evaluation(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    echo = {"x-request-id": call.request_id} if call.request_id else {}
    return _Answer(200, await answer_evaluation(remit, data, call.request_id), echo)


async def _task(remit: Remit, data: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's model
    body, headers = await start_task(remit, data, dpop=call.dpop, path=call.path)
    return _Answer(201, body, headers)


async def _revocation(remit: Remit, token: Any, call: Call) -> _Answer:  # noqa: ANN401, ARG001 - the route's form
    await revoke_presented(remit, token)
    return _Answer(200, None, NO_STORE)


async def _introspection(remit: Remit, token: Any, call: Call) -> _Answer:  # noqa: ANN401, ARG001 - the route's form
    return _Answer(200, introspection_of(remit, token), NO_STORE)


def _anonymous(remit: Remit, call: Call) -> bool:  # noqa: ARG001 - a door's admission rule
    """A holder's revocation: no Authorization header (an operator's is authenticated by the framework)."""
    return call.authorization is None


def _bootstrap_operator(remit: Remit, call: Call) -> bool:
    """The bootstrap operator token, checked in memory (constant time); an account's is the framework's to read."""
    return remit.operator.is_bootstrap(bearer_token(call.authorization))


async def _exchange(remit: Remit, form: Any, call: Call) -> _Answer:  # noqa: ANN401 - the route's form
    status, body = await exchange_token(remit, form, dpop=call.dpop, path=call.path)
    return _Answer(status, body, NO_STORE)


class _NotMine(ValueError):
    """The body is not one this route answers: the framework's route does."""


def _json_of(model: type[BaseModel]) -> Callable[[bytes], Any]:
    def parse(body: bytes) -> Any:  # noqa: ANN401 - the route's model
        try:
            return model.model_validate(msgspec.json.decode(body))
        except (msgspec.DecodeError, ValidationError, RecursionError):  # msgspec: RecursionError when too deep
            raise _NotMine from None

    return parse


def _form(body: bytes, *, max_fields: int) -> dict[str, str]:
    """An URL-encoded form whose every name comes once (a name given twice is the framework's to answer)."""
    try:
        fields = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise _NotMine from None
    form = dict(fields)
    if len(form) != len(fields):
        raise _NotMine
    return form


def _token_form(body: bytes) -> str:
    """The `token` of an RFC 7009 or RFC 7662 form: exactly one, and nothing but `token` and `token_type_hint`."""
    form = _form(body, max_fields=4)
    if "token" not in form or not set(form) <= {"token", "token_type_hint"}:
        raise _NotMine
    return form["token"]


def _exchange_form(body: bytes) -> dict[str, str]:
    """An RFC 8693 form: its fields, each once; what they say is the route's to judge, as on the other door."""
    return _form(body, max_fields=16)


@dataclass(frozen=True, slots=True)
class _Route:
    media: bytes
    parse: Callable[[bytes], Any]
    answer: Callable[[Remit, Any, Call], Awaitable[_Answer]]
    admits: Callable[[Remit, Call], bool] | None = None  # else the framework's route answers it


_ROUTES: Final[dict[str, _Route]] = {
    "/v1/decisions": _Route(_JSON, _json_of(DecisionIn), _decision),
    "/access/v1/evaluation": _Route(_JSON, _json_of(AuthzenEvaluationIn), _evaluation),
    "/v1/tasks": _Route(_JSON, _json_of(TaskIn), _task),
    "/oauth2/token": _Route(_FORM, _exchange_form, _exchange),
    "/oauth2/revoke": _Route(_FORM, _token_form, _revocation, admits=_anonymous),
    "/oauth2/introspect": _Route(_FORM, _token_form, _introspection, admits=_bootstrap_operator),
}


def _is(media: bytes, content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == media


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
        call = self._call(raw, route.media)
        if call is None or (route.admits is not None and not route.admits(self._remit, call)):
            await self._app(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            return  # the client went away before its body arrived: nobody to answer
        try:
            data = route.parse(body)
        except _NotMine:
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
        headers += [(name.lower().encode(), value.encode()) for name, value in answer.headers.items()]
        body = _NULL if answer.body is None else answer.body.model_dump_json().encode()
        await self._respond(send, answer.status, headers, body)

    def _call(self, scope: dict[str, Any], media: bytes) -> Call | None:
        """The request's particulars when it is of `media` within the limit, its length declared; else None."""
        content_type = length = request_id = dpop = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"x-request-id":
                request_id = value
            # A header sent twice: the first counts, as the framework's `headers.get` reads it.
            elif name == b"dpop" and dpop is None:
                dpop = value
            elif name == b"authorization" and authorization is None:
                authorization = value
        if content_type is None or not _is(media, content_type) or length is None or not length.isdigit():
            return None
        if int(length) > self._max_body:
            return None
        return Call(
            path=scope["path"],
            request_id=request_id_of(request_id.decode("latin-1")) if request_id is not None else None,
            dpop=dpop.decode("latin-1") if dpop is not None else None,
            authorization=authorization.decode("latin-1") if authorization is not None else None,
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

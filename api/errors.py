"""Errors users can act on: every 4xx names the field (when there is one) and the reason.

The domain's errors (domain/errors.py) become HTTP answers here, and only here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.secrets import SecretKeyMissing
from domain.audit import record_refusal
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    RateLimited: 429,
    Unavailable: 503,
}


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _loc(error: dict[str, Any]) -> tuple[int | str, ...]:
    """Where the error is; a control character found inside a field adds where in it."""
    inside = error.get("ctx", {}).get("path", ()) if error.get("type") == "control_character" else ()
    return (*error["loc"], *inside)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field(_loc(e)), "reason": e["msg"]} for e in exc.errors()]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return _error(400, "malformed JSON body", errors)
    content_type = request.headers.get("content-type", "")
    body_problem = any(e["loc"] and e["loc"][0] == "body" for e in exc.errors())
    if request.method in ("POST", "PUT", "PATCH") and body_problem and "json" not in content_type:
        # FastAPI only parses JSON bodies sent as JSON; say so instead of "body: not a dictionary".
        reason = f"send the body as JSON with Content-Type: application/json (got {content_type or 'none'})"
        return _error(415, reason, [{"field": "body", "reason": reason}])
    return _error(422, "; ".join(f"{e['field']}: {e['reason']}" for e in errors), errors)


def _error(status: int, detail: str, errors: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"detail": detail, "errors": errors}, status_code=status)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        {"detail": exc.detail, "errors": []}, status_code=exc.status_code, headers=exc.headers
    )


async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    if isinstance(exc, Forbidden) and request.method not in ("GET", "HEAD", "OPTIONS"):
        await record_refusal(request.app.state.db, request.method, request.url.path, status, exc.detail)
    errors = [{"field": exc.field, "reason": exc.reason}] if isinstance(exc, Invalid) else []
    response = _error(status, exc.detail, errors)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _secret_key_missing(_: Request, exc: Exception) -> JSONResponse:
    return _error(503, f"the server cannot store secrets: {exc}", [])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(SecretKeyMissing, _secret_key_missing)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]

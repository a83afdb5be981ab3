"""The moderation web app: Russian UI at /, API at /api/v1 — one FastAPI app.

`create_app(store, config, registry)` wires the store (services/moderation/store.py), the plain
configuration (WebConfig) and a prometheus registry (for the action counters); `dozor
moderation` serves it with uvicorn. /metrics is NOT served here: the queue gauges are served
on a port of their own (services/moderation/service.py), not on the public UI port.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api, ui, views
from .context import WebConfig, WebContext

__all__ = ["WebConfig", "create_app"]

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1 << 20

# The UI loads nothing from elsewhere (works offline) and runs no inline script: a text that
# slipped past escaping still could not execute. Links to the platforms open outside.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATUS_TEXT = {
    400: "Неверный запрос.",
    401: "Нужно войти.",
    403: "Доступ запрещён.",
    404: "Страница не найдена.",
    405: "Метод не поддерживается.",
    409: "Действие невозможно в текущем состоянии.",
    413: "Слишком большой запрос.",
    422: "Неверные данные.",
    429: "Слишком много запросов.",
}


def _static_versions() -> dict[str, str]:
    """Content hashes of the static files, for cache-busting URLs."""
    return {
        path.name: hashlib.sha1(path.read_bytes()).hexdigest()[:10]
        for path in STATIC.iterdir() if path.is_file()
    }


def _count_actions(store, registry: CollectorRegistry | None) -> None:
    """Moderator actions are counted by the store's `on_action` hook (so that the UI, the API
    and the command line count alike). `dozor moderation` installs it with the rest of the
    metrics; an app made on a store without the hook installs ModerationMetrics itself."""
    if registry is None or getattr(store, "on_action", None) is not None:
        return
    from services.moderation.metrics import ModerationMetrics

    store.on_action = ModerationMetrics(registry).on_action


#: Set in the ASGI scope by BodyLimit when a chunked body went past MAX_BODY_BYTES.
BODY_TOO_LARGE = "dozor.body_too_large"


class BodyLimit:
    """ASGI middleware: cap a request body that announces no Content-Length (chunked).

    An announced Content-Length over the cap is refused at once (413, in `create_app`). A
    chunked body announces nothing, so it is read here first, at most `max_bytes` + one
    chunk: past the cap the reading stops and the request is marked (scope key
    BODY_TOO_LARGE) so that the app answers 413 like for a Content-Length over the cap,
    without reading or handling it; under the cap the app gets the body as sent.
    """

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or any(name == b"content-length"
                                          for name, _ in scope.get("headers", ())):
            return await self.app(scope, receive, send)
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return await self.app(scope, _replay([message], receive), send)
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                scope = {**scope, BODY_TOO_LARGE: True}
                parts = []
                break
        body = {"type": "http.request", "body": b"".join(parts), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[dict], receive):
    """A `receive` that returns `messages` first, then whatever the connection sends."""
    pending = list(messages)

    async def replayed():
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def create_app(store, config: WebConfig, registry: CollectorRegistry | None = None) -> FastAPI:
    """The web app over one ModerationStore.

    `registry` is where dozor_moderation_actions_total{action} is counted when the store has
    no `on_action` hook yet (the moderation service installs the hook itself and serves the
    registry on its metrics port). Request bodies are capped at MAX_BODY_BYTES.
    """
    app = FastAPI(
        title="Дозор: очередь модерации",
        description="API очереди модерации Дозора. Авторизация: `Authorization: Bearer <токен>`.",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    _count_actions(store, registry)
    app.state.ctx = WebContext(store, config)

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      trim_blocks=False, lstrip_blocks=False)
    versions = _static_versions()
    env.globals["static_url"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    env.globals["role_name"] = lambda role: views.label(views.ROLES, role)
    templates = Jinja2Templates(env=env)
    app.state.templates = templates

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        length = request.headers.get("content-length")
        if (length and length.isdigit() and int(length) > MAX_BODY_BYTES) \
                or request.scope.get(BODY_TOO_LARGE):
            return _error(request, 413, STATUS_TEXT[413])
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _error(request: Request, status_code: int, detail: str, headers=None) -> Response:
        if request.url.path.startswith(API_PREFIX) or ui.wants_json(request):
            return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)
        session = None
        if status_code != 401:
            try:
                session = ui.current_session(request)
            except Exception:  # the error page must render even when the store is down
                session = None
        if status_code == 401 and request.method == "POST":
            return ui.login_page(request, error=detail, status_code=401)
        response = ui.render(request, "error.html", {"status_code": status_code, "detail": detail},
                             session=session, status_code=status_code)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # our own refusals are Russian; framework ones ("Not Found") get a Russian text
        russian = isinstance(exc.detail, str) and exc.detail and not exc.detail.isascii()
        detail = exc.detail if russian else STATUS_TEXT.get(exc.status_code, "Ошибка.")
        return await run_in_threadpool(_error, request, exc.status_code, detail,
                                       getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        where = ", ".join(".".join(e["loc"][1:] or e["loc"]) for e in errors)
        detail = f"Неверные параметры запроса: {where}." if where else STATUS_TEXT[422]
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
        return await run_in_threadpool(_error, request, 422, detail)

    # outermost: every body the app reads is counted, chunked or not
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.include_router(ui.router)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs(request: Request) -> HTMLResponse:
        """The API reference rendered on the server from the OpenAPI schema (Swagger UI
        would load its scripts from a CDN; the UI must work offline)."""
        return ui.render(request, "api_docs.html", {"endpoints": _endpoints(app.openapi()),
                                                    "nav": "api"})

    return app


def _endpoints(schema: dict) -> list[dict]:
    out = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            body = (op.get("requestBody", {}).get("content", {})
                    .get("application/json", {}).get("schema", {}))
            out.append({
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "parameters": [
                    {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                     "description": p.get("description", "")}
                    for p in op.get("parameters", [])
                ],
                "body": body.get("$ref", "").rsplit("/", 1)[-1],
                "responses": sorted(op.get("responses", {}).keys()),
            })
    return out

"""The server-rendered Russian UI: login, the queue, an item, users. Thin handlers over the store.

Every page is rendered by Jinja2 with autoescape on; texts from citizens, pages and flags are
untrusted and reach the browser only as escaped text. Every POST carries the session's CSRF
token (checked in constant time before anything else happens); the login form, which has no
session yet, carries a double-submit token of its own.
"""

from __future__ import annotations

import hashlib
import math
import re
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.moderation.errors import NotFound
from services.moderation.store import MIN_PASSWORD_LENGTH, ItemFilter, SessionInfo

from . import views
from .auth import CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE, new_token, tokens_match
from .context import WebContext
from .queries import read_queue
from .schemas import NOTE_MAX

router = APIRouter(include_in_schema=False)

FILTER_MAX = 200
MAX_PAGE = 10_000
DONE_MESSAGES = {
    "take": "Взято в работу.",
    "release": "Возвращено в очередь.",
    "resolve": "Решено.",
    "feedback": "Спасибо: ошибка модели записана и уйдёт на дообучение.",
    "user_added": "Пользователь добавлен.",
    "user_disabled": "Пользователь отключён: его сессии и токены больше не действуют.",
}
STATUS_CHOICES = {
    "open": "открытые",
    "new": "новые",
    "in_progress": "в работе",
    "resolved": "решённые",
    "all": "все",
}
_SAFE_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9/_\-.?=&%]*$")


def ctx(request: Request) -> WebContext:
    return request.app.state.ctx


def wants_json(request: Request) -> bool:
    """The queue's script asks for JSON answers to its actions (X-Dozor-Fetch)."""
    return request.headers.get("x-dozor-fetch") == "1"


def render(request: Request, name: str, context: dict, *, session: SessionInfo | None = None,
           status_code: int = 200) -> HTMLResponse:
    """A page of the UI; never cached, since it shows one signed-in user's view."""
    base = {
        "user": session.user if session else None,
        "csrf_token": session.csrf_token if session else "",
        "messages": [],
        "nav": None,
    }
    base.update(context)
    response = request.app.state.templates.TemplateResponse(
        request, name, base, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def current_session(request: Request) -> SessionInfo | None:
    """The live session of the request's cookie, or None (none, unknown, expired, disabled)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > 200:
        return None
    return ctx(request).store.session(session_id)


async def verified_post(request: Request) -> SessionInfo:
    """A signed-in POST with the session's CSRF token, or a refusal before anything changes.

    No session → 401; a missing or wrong token → 403. The token is compared in constant time.
    """
    session = await run_in_threadpool(current_session, request)
    if session is None:
        raise HTTPException(401, "Сессия истекла или не начата: войдите снова.")
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not tokens_match(session.csrf_token, token):
        raise HTTPException(403, "Неверный или устаревший CSRF-токен: обновите страницу.")
    request.state.session = session
    return session


def clean(value: str | None, limit: int = FILTER_MAX) -> str | None:
    """A filter value as the store gets it: stripped, cut, without NUL characters (which
    PostgreSQL refuses in text); empty → None."""
    if value is None:
        return None
    value = value.replace("\x00", "").strip()[:limit]
    return value or None


def form_text(form, name: str, limit: int) -> str:
    """A text field of a form; too long or not storable text is refused with 422."""
    value = form.get(name) or ""
    if not isinstance(value, str):
        raise HTTPException(422, f"Поле {name}: ожидается текст.")
    if len(value) > limit:
        raise HTTPException(422, f"Поле {name}: не длиннее {limit} символов.")
    if "\x00" in value:
        raise HTTPException(422, f"Поле {name}: недопустимый символ NUL.")
    return value


# ------------------------------------------------------------------ the queue


def parse_filters(params) -> tuple[ItemFilter, dict[str, str]]:
    """Query parameters → the store's ItemFilter and the values to show in the form.

    Values are bound parameters of the store's queries (never SQL text); unknown codes just
    match nothing.
    """
    current = {key: clean(params.get(key)) or "" for key in
               ("municipality", "page", "reason", "status", "age", "q")}
    status = current["status"] or "open"
    current["status"] = status
    age = views.AGE_FILTERS.get(current["age"])
    if age is None:
        current["age"] = ""
    filters = ItemFilter(
        municipality=current["municipality"] or None,
        page_id=current["page"] or None,
        reason=current["reason"] or None,
        status=None if status == "all" else status,
        min_age_seconds=age[1] if age else None,
        max_age_seconds=age[2] if age else None,
        query=current["q"] or None,
    )
    return filters, current


def page_number(params) -> int:
    try:
        return min(MAX_PAGE, max(1, int(params.get("p", "1"))))
    except ValueError:
        return 1


def _facets(current: dict, counts: dict[str, dict[str, int]],
            pages: list[tuple[str, str, int]]) -> list[dict]:
    def options(pairs, selected):
        out = [{"value": v, "label": lbl, "count": n, "selected": v == selected}
               for v, lbl, n in pairs]
        if selected and not any(o["selected"] for o in out):
            out.insert(0, {"value": selected, "label": selected, "count": 0, "selected": True})
        return out

    status_counts = counts.get("status", {})
    open_count = status_counts.get("new", 0) + status_counts.get("in_progress", 0)
    status_pairs = [
        ("open", STATUS_CHOICES["open"], open_count),
        *[(s, STATUS_CHOICES[s], status_counts.get(s, 0)) for s in ("new", "in_progress", "resolved")],
        ("all", STATUS_CHOICES["all"], sum(status_counts.values())),
    ]
    reason_counts = counts.get("reason", {})
    return [
        {"name": "status", "title": "Статус", "all_label": None,
         "options": options(status_pairs, current["status"])},
        {"name": "reason", "title": "Причина", "all_label": "все причины",
         "options": options([(r, name, reason_counts.get(r, 0))
                             for r, name in views.REASONS.items()], current["reason"])},
        {"name": "municipality", "title": "Муниципалитет", "all_label": "все",
         "options": options(sorted(((m, m, n) for m, n in counts.get("municipality", {}).items()),
                                   key=lambda t: t[0]), current["municipality"])},
        {"name": "page", "title": "Страница", "all_label": "все страницы",
         "options": options([(p, name, n) for p, name, n in pages], current["page"])},
        {"name": "age", "title": "Возраст", "all_label": "любой",
         "options": options([(k, v[0], None) for k, v in views.AGE_FILTERS.items()],
                            current["age"])},
    ]


def queue_context(c: WebContext, session: SessionInfo, params, *, with_facets: bool) -> dict:
    """Everything the queue page (or its live fragment) shows for these query parameters."""
    filters, current = parse_filters(params)
    page = page_number(params)
    size = c.config.page_size
    queue = read_queue(c.store, session.user, filters, limit=size, offset=(page - 1) * size,
                       facets=with_facets, cache=c.facet_cache)
    result = queue.page
    now = c.clock()
    calendar = c.config.calendar
    rows = [views.queue_row(item, now, calendar, c.config.topic_names) for item in result.items]
    pages = max(1, math.ceil(result.total / size))
    query = {k: v for k, v in current.items() if v and not (k == "status" and v == "open")}

    def url(path: str, p: int | None = None) -> str:
        q = dict(query)
        if p and p > 1:
            q["p"] = str(p)
        return path + ("?" + urlencode(q) if q else "")

    # The fragment is swapped in only when this changes: new items, other statuses, another
    # minute (ages and working time left are shown to the minute).
    signature = repr((result.total, int(now // 60),
                      [(i.flag_id, i.status, i.updated_at, i.assignee_id) for i in result.items]))
    context = {
        "items": rows,
        "total": result.total,
        "overdue_count": sum(1 for r in rows if r["overdue"]),
        "page": page,
        "pages": pages,
        "prev_url": url("/", page - 1) if page > 1 else None,
        "next_url": url("/", page + 1) if page < pages else None,
        "rows_url": url("/queue/rows", page),
        "version": hashlib.sha1(signature.encode()).hexdigest()[:16],
        "generated_at": views.format_time(now, calendar)[-5:],
        "filters": current,
        "filters_active": bool(query),
        "poll_seconds": c.config.poll_seconds,
        "nav": "queue",
    }
    if with_facets:
        context["facets"] = _facets(current, result.counts, queue.pages)
    return context


def login_page(request: Request, *, error: str | None = None, status_code: int = 200,
               login_value: str = "", next_path: str = "") -> HTMLResponse:
    token = new_token()
    response = render(request, "login.html", {
        "login_csrf": token, "error": error, "login_value": login_value,
        "next_path": next_path if safe_next(next_path) else "",
    }, status_code=status_code)
    response.set_cookie(value=token, **ctx(request).cookies.login_csrf_kwargs())
    return response


def safe_next(path: str | None) -> bool:
    """Only a path on this site (no `//host`, no scheme) may be a redirect after login."""
    return bool(path) and len(path) < 500 and bool(_SAFE_NEXT.match(path))


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionInfo | None = Depends(current_session)):
    """The queue; the login page when not signed in."""
    if session is None:
        expired = SESSION_COOKIE in request.cookies
        response = login_page(
            request, error="Сессия истекла или завершена: войдите снова." if expired else None,
            next_path=request.query_params.get("next") or "")
        if expired:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    context = queue_context(ctx(request), session, request.query_params, with_facets=True)
    done = DONE_MESSAGES.get(request.query_params.get("done") or "")
    if done:
        context["messages"] = [{"kind": "ok", "text": done}]
    return render(request, "queue.html", context, session=session)


@router.get("/queue/rows", response_class=HTMLResponse)
def queue_rows(request: Request, session: SessionInfo | None = Depends(current_session)):
    """The live part of the queue (summary, rows, pager), polled by the page's script."""
    if session is None:
        raise HTTPException(401, "Сессия истекла или не начата: войдите снова.")
    context = queue_context(ctx(request), session, request.query_params, with_facets=False)
    return render(request, "_queue_rows.html", context, session=session)


# ------------------------------------------------------------------ login, logout


@router.post("/login")
async def login(request: Request):
    """Sign in: login CSRF token, then the rate limit, then the password (argon2, store)."""
    c = ctx(request)
    form = await request.form()
    login_name = form.get("login")
    password = form.get("password")
    next_path = form.get("next") if isinstance(form.get("next"), str) else ""
    if not isinstance(login_name, str) or not isinstance(password, str):
        return login_page(request, error="Введите логин и пароль.", status_code=422)
    login_name = login_name.replace("\x00", "")[:200]
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD)
                        if isinstance(form.get(CSRF_FIELD), str) else None):
        return login_page(request, error="Форма входа устарела: попробуйте ещё раз.",
                          status_code=403, login_value=login_name, next_path=next_path)
    address = request.client.host if request.client else "unknown"
    if c.limiter.blocked(login_name, address):
        response = login_page(
            request, error="Слишком много неудачных попыток входа. Подождите минуту.",
            status_code=429, login_value=login_name, next_path=next_path)
        response.headers["Retry-After"] = str(c.limiter.retry_after(login_name, address))
        return response
    user = await run_in_threadpool(c.store.authenticate, login_name, password[:1000])
    if user is None:
        c.limiter.failed(login_name, address)
        return login_page(request, error="Неверный логин или пароль.", status_code=401,
                          login_value=login_name, next_path=next_path)
    c.limiter.succeeded(login_name)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await run_in_threadpool(c.store.end_session, old)
    session_id, _csrf = await run_in_threadpool(c.store.create_session, user)
    response = RedirectResponse(next_path if safe_next(next_path) else "/", status_code=303)
    response.set_cookie(value=session_id, **c.cookies.session_kwargs())
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionInfo = Depends(verified_post)):
    ctx(request).store.end_session(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------ an item


@router.get("/items/{flag_id}", response_class=HTMLResponse)
def item_page(flag_id: str, request: Request,
              session: SessionInfo | None = Depends(current_session)):
    """One item: its text, thread, scores, deadline, actions and history.

    An item of another municipality answers 404 exactly like a missing one: a 403 would
    tell a moderator that the flag id exists elsewhere (and flag ids are derived from page
    and comment ids, so they could be probed).
    """
    if session is None:
        return RedirectResponse("/?" + urlencode({"next": f"/items/{flag_id}"}), status_code=303)
    c = ctx(request)
    item = c.store.get_item(session.user, flag_id)
    if item is None:
        raise HTTPException(404, "Элемент не найден.")
    return _render_item(request, session, item)


def _render_item(request: Request, session: SessionInfo, item, *, messages=None,
                 status_code: int = 200) -> HTMLResponse:
    c = ctx(request)
    now = c.clock()
    calendar = c.config.calendar
    thread = c.store.thread(item)
    history = c.store.history(item.flag_id)
    done = DONE_MESSAGES.get(request.query_params.get("done") or "")
    feedback_labels = [
        {"name": name, "title": views.LABELS[name],
         "checked": float((item.scores or {}).get(name, 0.0)) >= 0.5}
        for name in ("question", "negative", "toxic")
    ]
    return render(request, "item.html", {
        "item": views.item_view(item, now, calendar),
        "thread": views.thread_view(thread, item, calendar),
        "history": views.history_view(history, calendar),
        "feedback_labels": feedback_labels,
        "messages": messages or ([{"kind": "ok", "text": done}] if done else []),
    }, session=session, status_code=status_code)


def _act(request: Request, session: SessionInfo, flag_id: str, action: str, call) -> Response:
    """Run one workflow step; answer JSON to the queue's script, a redirect to a form."""
    views.run_action(call)
    if wants_json(request):
        return JSONResponse({"message": DONE_MESSAGES[action], "flag_id": flag_id})
    return RedirectResponse(f"/items/{flag_id}?done={action}", status_code=303)


@router.post("/items/{flag_id}/take")
def take(flag_id: str, request: Request, session: SessionInfo = Depends(verified_post)):
    return _act(request, session, flag_id, "take",
                lambda: ctx(request).store.take(session.user, flag_id))


@router.post("/items/{flag_id}/release")
def release(flag_id: str, request: Request, session: SessionInfo = Depends(verified_post)):
    return _act(request, session, flag_id, "release",
                lambda: ctx(request).store.release(session.user, flag_id))


@router.post("/items/{flag_id}/resolve")
async def resolve(flag_id: str, request: Request, session: SessionInfo = Depends(verified_post)):
    form = await request.form()
    resolution = form.get("resolution")
    if resolution not in views.HUMAN_RESOLUTIONS:
        raise HTTPException(422, "Выберите решение: отвечено, скрыть или отклонить.")
    note = form_text(form, "note", NOTE_MAX)
    return await run_in_threadpool(
        _act, request, session, flag_id, "resolve",
        lambda: ctx(request).store.resolve(session.user, flag_id, resolution, note))


@router.post("/items/{flag_id}/feedback")
async def feedback(flag_id: str, request: Request, session: SessionInfo = Depends(verified_post)):
    form = await request.form()
    labels = {name: 1 if form.get(name) in ("1", "on") else 0
              for name in ("question", "negative", "toxic")}
    note = form_text(form, "note", NOTE_MAX)
    return await run_in_threadpool(
        _act, request, session, flag_id, "feedback",
        lambda: ctx(request).store.report_model_error(session.user, flag_id, labels, note))


# ------------------------------------------------------------------ users (admins)


def _admin(session: SessionInfo | None) -> SessionInfo:
    if session is None:
        raise HTTPException(401, "Сессия истекла или не начата: войдите снова.")
    if session.user.role != "admin":
        raise HTTPException(403, "Пользователями управляют только администраторы.")
    return session


def _users_page(request: Request, session: SessionInfo, *, messages=None,
                status_code: int = 200) -> HTMLResponse:
    done = DONE_MESSAGES.get(request.query_params.get("done") or "")
    return render(request, "users.html", {
        "users": ctx(request).store.list_users(),
        "roles": views.ROLES,
        "nav": "users",
        "messages": messages or ([{"kind": "ok", "text": done}] if done else []),
    }, session=session, status_code=status_code)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionInfo | None = Depends(current_session)):
    if session is None:
        return RedirectResponse("/?next=/users", status_code=303)
    return _users_page(request, _admin(session))


@router.post("/users")
async def add_user(request: Request, session: SessionInfo = Depends(verified_post)):
    _admin(session)
    form = await request.form()
    login_name = form_text(form, "login", 100).strip()
    display_name = form_text(form, "display_name", 200).strip()
    role = form_text(form, "role", 20)
    municipalities = [m.strip() for m in form_text(form, "municipalities", 2000).split(",")]
    password = form_text(form, "password", 1000)
    error = None
    if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", login_name):
        error = "Логин: латинские буквы, цифры и . _ @ -"
    elif len(password) < MIN_PASSWORD_LENGTH:
        error = f"Пароль: не короче {MIN_PASSWORD_LENGTH} символов."
    if error is None:
        try:
            await run_in_threadpool(
                lambda: ctx(request).store.add_user(
                    login_name, role, password, display_name=display_name or None,
                    municipalities=[m for m in municipalities if m]))
        except ValueError as exc:
            error = views.sentence(exc)
    if error:
        return await run_in_threadpool(
            lambda: _users_page(request, session, messages=[{"kind": "error", "text": error}],
                                status_code=422))
    return RedirectResponse("/users?done=user_added", status_code=303)


@router.post("/users/disable")
async def disable_user(request: Request, session: SessionInfo = Depends(verified_post)):
    _admin(session)
    form = await request.form()
    login_name = form_text(form, "login", 100)
    if login_name == session.user.login:
        raise HTTPException(409, "Нельзя отключить самого себя.")
    try:
        await run_in_threadpool(ctx(request).store.disable_user, login_name)
    except NotFound:
        raise HTTPException(404, "Пользователь не найден.") from None
    return RedirectResponse("/users?done=user_disabled", status_code=303)

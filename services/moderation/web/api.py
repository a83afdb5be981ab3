"""HTTP API /api/v1 for machines: the same queue and workflow as the UI, Bearer API tokens.

Tokens are made with `dozor users token LOGIN --name N`; the store keeps only their sha256.
No cookies are read here, so no CSRF token is needed: a browser never sends a Bearer header
on its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.moderation.store import ItemDetail, ItemFilter, User

from . import views
from .context import WebContext
from .queries import read_queue
from .schemas import (
    AuditEntryOut,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    ItemDetailOut,
    ItemListOut,
    ItemOut,
    ResolveIn,
    Status,
    ThreadEventOut,
    UserOut,
    ValidationErrorOut,
    check_text,
)

bearer = HTTPBearer(auto_error=False, description="API-токен: `dozor users token LOGIN --name N`")

ERRORS = {
    401: {"model": ErrorOut, "description": "Нет токена, токен неверен или пользователь отключён"},
    422: {"model": ValidationErrorOut, "description": "Неверные параметры запроса"},
}
ITEM_ERRORS = {
    **ERRORS,
    403: {"model": ErrorOut, "description": "Действие запрещено (элемент в работе у другого)"},
    404: {"model": ErrorOut, "description": "Элемент не найден (или не виден этому пользователю)"},
    409: {"model": ErrorOut, "description": "Переход невозможен из текущего статуса"},
}

router = APIRouter(prefix="/api/v1", tags=["moderation"], responses=ERRORS)

FlagId = Annotated[str, Path(min_length=1, max_length=64, description="flag_id элемента")]


def api_user(request: Request,
             credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> User:
    """The enabled user of a valid Bearer token, else 401 (before anything is read or changed)."""
    token = credentials.credentials if credentials else None
    user = None
    if token and len(token) <= 200:
        user = request.app.state.ctx.store.user_for_token(token)
    if user is None:
        raise HTTPException(401, "Нужен действующий API-токен (Authorization: Bearer …).",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


def _ctx(request: Request) -> WebContext:
    return request.app.state.ctx


def item_out(item: ItemDetail) -> ItemOut:
    return ItemOut(
        **{name: getattr(item, name) for name in ItemOut.model_fields if name != "reason_name"},
        reason_name=views.label(views.REASONS, item.reason),
    )


def _text_param(value: str | None) -> str | None:
    try:
        value = check_text(value)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return value or None


@router.get("/me", response_model=UserOut, summary="Кто я")
def me(user: User = Depends(api_user)) -> UserOut:
    return UserOut(id=user.id, login=user.login, display_name=user.display_name,
                   role=user.role, municipalities=list(user.municipalities),
                   disabled=user.disabled)


@router.get("/items", response_model=ItemListOut, summary="Очередь (с фильтрами)")
def list_items(
    request: Request,
    user: User = Depends(api_user),
    municipality: Annotated[str | None, Query(max_length=200)] = None,
    page_id: Annotated[str | None, Query(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[Status | None, Query(description="по умолчанию new и in_progress")] = None,
    all_statuses: Annotated[bool, Query(description="все статусы, включая решённые")] = False,
    min_age_seconds: Annotated[float | None, Query(ge=0, le=1e10, allow_inf_nan=False)] = None,
    max_age_seconds: Annotated[float | None, Query(ge=0, le=1e10, allow_inf_nan=False)] = None,
    q: Annotated[str | None, Query(max_length=200, description="подстрока текста")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ItemListOut:
    """Items the token's user may see: overdue questions first, then the oldest first."""
    filters = ItemFilter(
        municipality=_text_param(municipality), page_id=_text_param(page_id),
        reason=_text_param(reason),
        status=status or (None if all_statuses else "open"),
        min_age_seconds=min_age_seconds, max_age_seconds=max_age_seconds,
        query=_text_param(q),
    )
    page = read_queue(_ctx(request).store, user, filters, limit=limit, offset=offset,
                      cache=_ctx(request).facet_cache).page
    return ItemListOut(items=[item_out(i) for i in page.items], total=page.total,
                       limit=limit, offset=offset, counts=page.counts)


def _detail(request: Request, user: User, flag_id: str) -> ItemDetailOut:
    store = _ctx(request).store
    item = store.get_item(user, flag_id)
    if item is None:
        # Same answer for "no such item" and "another municipality's item", so the API
        # does not confirm which flag ids exist.
        raise HTTPException(404, "Элемент не найден.")
    return ItemDetailOut(
        **item_out(item).model_dump(),
        thread=[ThreadEventOut(**vars(e)) for e in store.thread(item)],
        history=[AuditEntryOut(**vars(e)) for e in store.history(flag_id)],
    )


@router.get("/items/{flag_id}", response_model=ItemDetailOut, responses=ITEM_ERRORS,
            summary="Элемент с обсуждением и историей")
def get_item(flag_id: FlagId, request: Request, user: User = Depends(api_user)) -> ItemDetailOut:
    return _detail(request, user, flag_id)


def _run(request: Request, user: User, flag_id: str, action: str, call):
    return views.run_action(call)


@router.post("/items/{flag_id}/take", response_model=ItemDetailOut, responses=ITEM_ERRORS,
             summary="Взять в работу")
def take(flag_id: FlagId, request: Request, user: User = Depends(api_user)) -> ItemDetailOut:
    _run(request, user, flag_id, "take", lambda: _ctx(request).store.take(user, flag_id))
    return _detail(request, user, flag_id)


@router.post("/items/{flag_id}/release", response_model=ItemDetailOut, responses=ITEM_ERRORS,
             summary="Вернуть в очередь")
def release(flag_id: FlagId, request: Request, user: User = Depends(api_user)) -> ItemDetailOut:
    _run(request, user, flag_id, "release", lambda: _ctx(request).store.release(user, flag_id))
    return _detail(request, user, flag_id)


@router.post("/items/{flag_id}/resolve", response_model=ItemDetailOut, responses=ITEM_ERRORS,
             summary="Решить: answered, hidden или dismissed, с комментарием")
def resolve(flag_id: FlagId, body: ResolveIn, request: Request,
            user: User = Depends(api_user)) -> ItemDetailOut:
    _run(request, user, flag_id, "resolve",
         lambda: _ctx(request).store.resolve(user, flag_id, body.resolution, body.note))
    return _detail(request, user, flag_id)


@router.post("/items/{flag_id}/feedback", response_model=FeedbackOut, responses=ITEM_ERRORS,
             summary="«Модель ошиблась»: верные метки текста")
def feedback(flag_id: FlagId, body: FeedbackIn, request: Request,
             user: User = Depends(api_user)) -> FeedbackOut:
    result = _run(request, user, flag_id, "feedback",
                  lambda: _ctx(request).store.report_model_error(
                      user, flag_id, body.labels.model_dump(), body.note))
    return FeedbackOut(id=result.id, flag_id=result.flag_id, at=result.at,
                       question=result.question, negative=result.negative, toxic=result.toxic,
                       note=result.note)

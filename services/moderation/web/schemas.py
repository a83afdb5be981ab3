"""Request and response models of the HTTP API (/api/v1), so the OpenAPI schema is exact."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Reason = Literal["toxic", "strongly_negative", "unanswered_question", "negative_spike"]
Status = Literal["new", "in_progress", "resolved"]
Resolution = Literal["answered", "hidden", "dismissed", "answered_by_page", "deleted_on_page"]
HumanResolution = Literal["answered", "hidden", "dismissed"]
Role = Literal["operator", "municipal", "admin"]

NOTE_MAX = 4000


def check_text(value: str | None) -> str | None:
    """Refuse text the database cannot store: NUL characters (PostgreSQL text refuses them)
    and lone surrogates (not encodable as UTF-8). Refused as 422 rather than failing as 500."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("текст не может содержать символ NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("текст должен быть корректным UTF-8") from exc
    return value


class ErrorOut(BaseModel):
    """Every refusal: a Russian explanation for the person reading it."""

    detail: str = Field(description="Что не так, по-русски")


class ValidationErrorOut(BaseModel):
    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class UserOut(BaseModel):
    id: int
    login: str
    display_name: str
    role: Role
    municipalities: list[str]
    disabled: bool = False


class ItemOut(BaseModel):
    """One flagged item of the queue."""

    flag_id: str
    reason: Reason | str
    reason_name: str = Field(description="Причина по-русски")
    page_id: str
    page_name: str
    municipality: str
    platform: str
    item_id: str
    thread_id: str
    author_id: str
    text: str
    link: str
    created_at: float
    flagged_at: float
    scores: dict[str, float]
    details: dict[str, Any]
    topic: str | None = Field(description="Тема (ключ темы модели: roads, waste, …) или null")
    deadline_at: float | None
    overdue: bool = Field(description="Срок ответа прошёл, а вопрос не решён")
    status: Status
    resolution: Resolution | None
    assignee_id: int | None
    assignee_name: str | None
    resolution_note: str | None
    answer_link: str | None
    edited: bool
    deleted_on_page: bool
    first_action_at: float | None
    resolved_at: float | None
    updated_at: float


class ItemListOut(BaseModel):
    items: list[ItemOut]
    total: int = Field(description="Всего элементов по фильтру (видимых этому пользователю)")
    limit: int
    offset: int
    counts: dict[str, dict[str, int]] = Field(
        description="Число элементов по значениям фильтров (status, reason, municipality)"
    )


class ThreadEventOut(BaseModel):
    page_id: str
    item_id: str
    thread_id: str
    kind: str
    by_page: bool
    author_id: str
    text: str
    url: str
    created_at: float
    deleted: bool


class AuditEntryOut(BaseModel):
    id: int
    flag_id: str
    at: float
    actor_id: int | None
    actor_name: str
    action: str
    from_status: str | None
    to_status: str | None
    resolution: str | None
    note: str | None


class ItemDetailOut(ItemOut):
    thread: list[ThreadEventOut]
    history: list[AuditEntryOut]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: HumanResolution
    note: str | None = Field(None, max_length=NOTE_MAX)

    _text = field_validator("note")(classmethod(lambda cls, v: check_text(v)))


class FeedbackLabels(BaseModel):
    """The right labels of the text: 1 = it is there, 0 = it is not."""

    model_config = ConfigDict(extra="forbid")

    question: Literal[0, 1] = 0
    negative: Literal[0, 1] = 0
    toxic: Literal[0, 1] = 0


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: FeedbackLabels
    note: str | None = Field(None, max_length=NOTE_MAX)

    _text = field_validator("note")(classmethod(lambda cls, v: check_text(v)))


class FeedbackOut(BaseModel):
    id: int
    flag_id: str
    at: float
    question: int
    negative: int
    toxic: int
    note: str | None = None

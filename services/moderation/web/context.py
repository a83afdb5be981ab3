"""What every request handler of the web app shares: the store, the configuration, the clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.tracking.calendar import WorkingCalendar

from .auth import CookiePolicy, LoginRateLimiter
from .queries import FacetCache

if TYPE_CHECKING:
    from services.moderation.store import ModerationStore


@dataclass(frozen=True)
class WebConfig:
    """Plain values the web app needs; `dozor moderation` builds it from Settings.

    `calendar` is the region's working calendar (deadlines are shown as working time left);
    `clock` defaults to the store's clock, so a test's fake clock moves both.
    """

    cookie_secure: bool = True
    session_hours: float = 12.0
    login_attempts_per_minute: int = 5
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    page_size: int = 50
    poll_seconds: float = 5.0
    #: facet counts may lag the list by this much (0: counted on every request)
    facet_cache_seconds: float = 5.0
    clock: Callable[[], float] | None = None
    #: theme key → Russian name for the queue's «Тема» column (empty: the keys are shown)
    topic_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WebConfig:
        """The web part of `services.settings.Settings`."""
        from .views import read_topic_names

        calendar = settings.working_calendar()
        values = dict(
            cookie_secure=settings.moderation_cookie_secure,
            session_hours=settings.moderation_session_hours,
            login_attempts_per_minute=settings.moderation_login_attempts_per_minute,
            calendar=calendar,
            # the names of the worker's model (settings.model, topics.json), if it is a folder
            topic_names=read_topic_names(settings.model),
        )
        values.update(overrides)
        return cls(**values)


class WebContext:
    """The store and the configuration of one app, held in `app.state.ctx`."""

    def __init__(self, store: ModerationStore, config: WebConfig) -> None:
        self.store = store
        self.config = config
        self.clock: Callable[[], float] = config.clock or getattr(store, "clock", time.time)
        self.cookies = CookiePolicy(
            secure=config.cookie_secure, max_age_seconds=int(config.session_hours * 3600)
        )
        self.limiter = LoginRateLimiter(config.login_attempts_per_minute, self.clock)
        self.facet_cache = FacetCache(config.facet_cache_seconds, time.monotonic)

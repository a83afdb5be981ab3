"""Sign-in machinery of the moderation web app: cookies, CSRF, login rate limit, bearer tokens.

The store keeps sessions (hashed id, CSRF token, expiry) and users; this module only decides
what a request carries and whether it is allowed. Everything here is plain and testable
without HTTP.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "dozor_session"
#: Double-submit token of the login form: there is no session yet to hold a CSRF token, and
#: without it another site could sign a victim in to the attacker's account (login CSRF).
LOGIN_CSRF_COOKIE = "dozor_login_csrf"
CSRF_FIELD = "csrf_token"


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; a missing or empty one never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class CookiePolicy:
    """How session cookies are set: Secure per configuration, always HttpOnly and SameSite."""

    secure: bool
    max_age_seconds: int
    #: Lax, not Strict: a moderator who follows a link to an item from a chat or an alert
    #: arrives signed in. Every state-changing request is a POST with a CSRF token anyway.
    samesite: str = "lax"

    def session_kwargs(self) -> dict:
        return {
            "key": SESSION_COOKIE,
            "max_age": self.max_age_seconds,
            "httponly": True,
            "secure": self.secure,
            "samesite": self.samesite,
            "path": "/",
        }

    def login_csrf_kwargs(self) -> dict:
        return {
            "key": LOGIN_CSRF_COOKIE,
            "max_age": 3600,
            "httponly": True,
            "secure": self.secure,
            "samesite": "strict",
            "path": "/",
        }


class LoginRateLimiter:
    """Failed logins per login name and per client address in a sliding minute.

    A key that reached `limit` failures within the last 60 seconds is refused (HTTP 429)
    before its password is even checked, so guessing costs an attacker a minute per `limit`
    tries whichever of the two they vary. Kept in memory: one moderation process serves the
    UI; a restart forgets the counts, which only helps a guesser by one window.
    """

    WINDOW_SECONDS = 60.0

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = max(1, int(limit))
        self._clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    @staticmethod
    def keys(login: str, address: str) -> list[str]:
        return [f"login:{login.strip().casefold()}", f"addr:{address}"]

    def _prune(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self.WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self._failures[key]
            return deque()
        return times

    def blocked(self, login: str, address: str) -> bool:
        """Whether this login name or this address has used up its failures this minute."""
        now = self._clock()
        with self._lock:
            return any(len(self._prune(k, now)) >= self.limit for k in self.keys(login, address))

    def retry_after(self, login: str, address: str) -> int:
        """Seconds until the oldest counted failure leaves the window (for Retry-After)."""
        now = self._clock()
        with self._lock:
            oldest = [
                times[0] for k in self.keys(login, address) if (times := self._prune(k, now))
            ]
        if not oldest:
            return 0
        return max(1, int(min(oldest) + self.WINDOW_SECONDS - now + 0.999))

    MAX_KEYS = 100_000

    def failed(self, login: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:
                # guessing over very many logins or addresses: forget what left the window
                for key in list(self._failures):
                    self._prune(key, now)
            for key in self.keys(login, address):
                self._failures[key].append(now)

    def succeeded(self, login: str) -> None:
        """A correct password clears the login's count (not the address's: one address may
        be guessing many logins and get one right by chance)."""
        with self._lock:
            self._failures.pop(self.keys(login, "")[0], None)

"""Who is at the desk (DESIGN §6b "Đăng nhập"): an organiser signs in with their name and token
(CCHC_ADMIN_TOKENS) and gets a session kept on the server (Redis: eventstore/redis_stream/desk.py) behind a
cookie — HttpOnly, SameSite=Strict, Secure unless CCHC_DESK_INSECURE=1 — that expires after 30 idle
minutes; every change carries the session's CSRF token; five failed sign-ins within a minute from one
address make every sign-in from it wait until the oldest of them is a minute old (a sliding window).
Scripts keep the Bearer token of the JSON routes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from eventstore.pii import PiiVault
from eventstore.redis_stream.desk import DeskStore, Session
from runtime.clock import Clock
from runtime.web import ApiError, IPNetwork, bearer_token, client_address, limited_client

COOKIE = "cchc_desk"
PRE_COOKIE = "cchc_desk_signin"  # the sign-in form's own CSRF token (no session exists yet)
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
IDLE_S = 30 * 60
FAILURES_ALLOWED = 5
WINDOW_MS = 60_000


class SignInRefused(Exception):
    """A name and token that do not belong together (the message never says which was wrong)."""


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed sign-ins from this address; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _digest(cookie: str) -> str:
    """The session's name in Redis: a hash of the cookie's 256 random bits (the cookie is nowhere at rest)."""
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass
class Sessions:
    store: DeskStore
    tokens: dict[str, str]  # admin token → the organiser's name
    vault: PiiVault  # keys the client addresses' hashes (the window is shared by every desk process)
    clock: Clock
    trusted_proxies: tuple[IPNetwork, ...] = ()
    secure: bool = True  # the cookie only over HTTPS (off: CCHC_DESK_INSECURE=1, loopback)

    def name_of_token(self, token: str) -> str | None:
        given = token.encode("utf-8", "surrogateescape")
        return next((n for t, n in self.tokens.items() if hmac.compare_digest(given, t.encode())), None)

    def _address(self, request: web.Request) -> str:
        """The client the failed sign-ins are counted against: an IPv6 one by its /64, as ingest's limits."""
        return self.vault.address_hash(limited_client(client_address(request, self.trusted_proxies)))

    async def sign_in(self, request: web.Request, name: str, token: str) -> tuple[str, Session]:
        """A new session for the organiser, or SignInRefused (counted) / TooManyFailures (not counted)."""
        address, now = self._address(request), self.clock.now_ms()
        failures = await self.store.recent_failures(address, now, WINDOW_MS)
        if len(failures) >= FAILURES_ALLOWED:
            oldest = failures[-FAILURES_ALLOWED]
            raise TooManyFailures(max(1, -(-(oldest + WINDOW_MS - now) // 1000)))
        owner = self.name_of_token(token.strip())
        if owner is None or owner != name.strip():
            await self.store.failed(address, now, WINDOW_MS, secrets.token_hex(4))
            raise SignInRefused("the name and the token do not match an organiser")
        cookie = secrets.token_urlsafe(32)
        session = Session(owner, secrets.token_urlsafe(24))
        await self.store.open_session(_digest(cookie), session, IDLE_S)
        return cookie, session

    async def current(self, request: web.Request) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie or len(cookie) > 100:
            return None
        return await self.store.session(_digest(cookie), IDLE_S)

    async def sign_out(self, request: web.Request) -> None:
        cookie = request.cookies.get(COOKIE)
        if cookie and len(cookie) <= 100:
            await self.store.end_session(_digest(cookie))

    def set_cookie(self, response: web.StreamResponse, name: str, value: str, *, max_age: int | None = None) -> None:
        """HttpOnly, SameSite=Strict, Path=/, Secure unless insecure (DESIGN §6b); no Max-Age: it ends with the
        browser, and the server ends it after 30 idle minutes."""
        response.set_cookie(name, value, path="/", httponly=True, samesite="Strict", secure=self.secure,
                            max_age=max_age)

    def drop_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Strict")

    async def organiser(self, request: web.Request, *, changes: bool) -> str:
        """The JSON door's caller: a Bearer token's organiser, or a signed-in session's — whose changes carry
        its CSRF token in the X-CSRF-Token header. 401 otherwise, 403 without the token."""
        token = bearer_token(request)
        if token is not None:
            name = self.name_of_token(token)
            if name is None:
                raise ApiError(401, "unauthorized", "admin actions need Authorization: Bearer <an admin token>")
            return name
        session = await self.current(request)
        if session is None:
            raise ApiError(401, "unauthorized", "admin actions need Authorization: Bearer <an admin token>"
                           " or a desk session")
        if changes and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
            raise ApiError(403, "forbidden", "a change needs the session's CSRF token (X-CSRF-Token)")
        return session.name


def csrf_matches(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode("utf-8", "surrogateescape"))

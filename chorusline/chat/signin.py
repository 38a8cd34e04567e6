"""Signing people in: passwords checked slowly, sessions as short signed tokens that the
server can still revoke, and a throttle on guessing.

A session token is a JWT (PyJWT, HS256) signed with a secret the store keeps, so every
process over one database accepts the others' tokens. It names the user (``sub``), the
session row (``sid``) and a CSRF secret (``csrf``), and expires after ``SESSION_SECONDS``;
while it is used it is reissued once less than half its life is left. The signature
alone would let a stolen token live until it expires, so every use also reads the
session row: logout, a password change or disabling the account ends it at once.

The CSRF secret is what a page must echo in a header on every state-changing request
made with the cookie (``web.sessions`` checks it): a cross-site form can make a browser
send the cookie, never the header.

Guessing is throttled per name and per client address (``LoginThrottle``), and at most
``HASHING`` password checks run at once: each takes about 0.4 s of a core and 128 MiB
(``chat.passwords``), so unbounded logins would be a memory attack. An unknown name costs
the same hash as a known one, so timing does not reveal which names exist.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import trio

from chorusline.chat.db import Db
from chorusline.chat.passwords import hash_password, verify_password
from chorusline.chat.principal import Principal
from chorusline.protocols import PermissionDenied, RateLimited, Unauthorized
from chorusline.ratelimit import Tiers
from chorusline.store import Store, User

SESSION_SECONDS = 30 * 60
SECRET_NAME = "session-signing-key"
ALGORITHM = "HS256"
#: Failed sign-ins allowed per name and per address in ``WINDOW_SECONDS``.
PER_NAME, PER_ADDRESS, WINDOW_SECONDS = 5, 20, 15 * 60
HASHING = 2


@dataclass(frozen=True)
class PageSession:
    """A signed-in person: who, the token to set as the cookie (reissued when it was
    renewed, else the one presented) and its CSRF secret."""

    principal: Principal
    user: User
    token: str
    csrf: str
    expires: datetime
    renewed: bool = False


class LoginThrottle:
    """Failures per key in a sliding window; in process (per worker with --workers)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def check(self, key: str, limit: int) -> None:
        now = self._clock()
        window = self._failures.get(key)
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if window is not None and len(window) >= limit:
            retry = window[0] + WINDOW_SECONDS - now
            raise RateLimited("too many failed sign-ins; try again later",
                              retry_after=max(1.0, retry))

    def failed(self, key: str) -> None:
        self._failures.setdefault(key, deque()).append(self._clock())

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


class SignIn:
    def __init__(self, db: Db, store: Store, tiers: Tiers) -> None:
        self._db, self._store, self._tiers = db, store, tiers
        self._throttle = LoginThrottle()
        self._hashing = trio.CapacityLimiter(HASHING)
        self._secret: str | None = None
        #: Verified against when the name is unknown, so it costs a real hash too.
        self._dummy: str | None = None

    async def _key(self) -> str:
        if self._secret is None:
            self._secret = await self._db(self._store.server_secret, SECRET_NAME)
        return self._secret

    async def sign_in(self, name: str, password: str, address: str) -> PageSession:
        """A new session for ``name``; ``Unauthorized`` (the same for an unknown name, a
        wrong password and a disabled account), ``RateLimited`` while throttled."""
        self._throttle.check(f"name:{name}", PER_NAME)
        self._throttle.check(f"addr:{address}", PER_ADDRESS)
        account = await self._db(self._store.credentials, name)
        stored = None if account is None else account.password_hash
        if stored is None and self._dummy is None:
            self._dummy = await trio.to_thread.run_sync(
                hash_password, secrets.token_urlsafe(16), limiter=self._hashing)
        ok = await trio.to_thread.run_sync(verify_password, password,
                                           stored or self._dummy, limiter=self._hashing)
        if account is None or stored is None or not ok or account.disabled:
            self._throttle.failed(f"name:{name}")
            self._throttle.failed(f"addr:{address}")
            raise Unauthorized("wrong name or password")
        self._throttle.forget(f"name:{name}")
        expires = datetime.now(UTC) + timedelta(seconds=SESSION_SECONDS)
        row = await self._db(self._store.create_web_session, account.user.id, expires)
        return await self._issue(account.user, account.tier, row.id, expires, renewed=True)

    async def _issue(self, user: User, tier: str, session_id: str, expires: datetime, *,
                     renewed: bool, csrf: str | None = None) -> PageSession:
        csrf = csrf or secrets.token_urlsafe(24)
        token = jwt.encode({"sub": user.id, "sid": session_id, "csrf": csrf,
                            "exp": int(expires.timestamp())}, await self._key(),
                           algorithm=ALGORITHM)
        return PageSession(self._principal(user, tier), user, token, csrf, expires, renewed)

    def _principal(self, user: User, tier: str) -> Principal:
        """Every page session of a user shares one rate-limit bucket (``web-<user>``),
        on the account's tier."""
        if tier not in self._tiers:
            raise PermissionDenied(f"this account's tier {tier!r} is not configured on "
                                   "this server; ask an operator")
        return Principal(user.id, f"web-{user.id}", self._tiers.get(tier), page_session=True)

    async def session(self, token: str) -> PageSession:
        """The live session ``token`` names, renewed when half its life is gone;
        ``Unauthorized`` for a forged, expired, revoked or disabled one."""
        try:
            claims = jwt.decode(token, await self._key(), algorithms=[ALGORITHM],
                                options={"require": ["sub", "sid", "csrf", "exp"]})
        except jwt.PyJWTError:
            raise Unauthorized("the session is invalid or has expired; sign in again") \
                from None
        row = await self._db(self._store.web_session, str(claims["sid"]))
        now = datetime.now(UTC)
        if row is None or row.revoked or row.expires <= now or row.user_id != claims["sub"]:
            raise Unauthorized("the session has ended; sign in again")
        account = await self._db(self._store.user_account, row.user_id)
        if account.disabled:
            raise Unauthorized("the account is disabled")
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        if expires - now < timedelta(seconds=SESSION_SECONDS / 2):
            expires = now + timedelta(seconds=SESSION_SECONDS)
            await self._db(self._store.extend_web_session, row.id, expires)
            return await self._issue(account.user, account.tier, row.id, expires,
                                     renewed=True, csrf=str(claims["csrf"]))
        return PageSession(self._principal(account.user, account.tier), account.user, token,
                           str(claims["csrf"]), expires)

    async def sign_out(self, token: str) -> None:
        """End the session ``token`` names (nothing happens for an invalid token)."""
        try:
            claims = jwt.decode(token, await self._key(), algorithms=[ALGORITHM],
                                options={"verify_exp": False})
        except jwt.PyJWTError:
            return
        await self._db(self._store.revoke_web_session, str(claims.get("sid", "")))

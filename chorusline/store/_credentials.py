"""Sign-in for people: password hashes, page sessions and the server's secrets.

The store keeps what the chat layer computes: a password's hash (``chat.passwords``
makes and checks it; the store never sees a password) and the sessions a signed cookie
names. A session is a row so that logging out, disabling the account or a password
change can end it at once on every process: the cookie's signature says who it was made
for, the row says whether it still counts.

Names identify people at sign-in, so two accounts that can sign in must not share one:
``set_password`` refuses a name another account with a password already has.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from chorusline.protocols import InvalidRequest, NotFound
from chorusline.store._accounts import AccountsMixin
from chorusline.store._checks import check_text
from chorusline.store._sql import new_id
from chorusline.store.models import Credentials, WebSession


class CredentialsMixin(AccountsMixin):
    def credentials(self, name: str) -> Credentials | None:
        """The account called ``name`` that can sign in (has a password), else the oldest
        of that name; None if there is none."""
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT id, name, custom_instructions, created, password_hash, tier, "
                "disabled_at FROM users WHERE name = ? "
                "ORDER BY password_hash IS NULL, created, id LIMIT 1", (name,))
        if row is None:
            return None
        return Credentials(self._user(row), row["password_hash"], row["tier"],
                           row["disabled_at"] is not None)

    def user_account(self, user_id: str) -> Credentials:
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT id, name, custom_instructions, created, password_hash, tier, "
                "disabled_at FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound(f"user {user_id!r} not found", param="user_id")
        return Credentials(self._user(row), row["password_hash"], row["tier"],
                           row["disabled_at"] is not None)

    def set_password(self, user_id: str, password_hash: str) -> None:
        """Set the account's password hash; every session it had ends."""
        _, now_db = self._now()
        with self._transaction() as tx:
            row = tx.fetchone("SELECT name FROM users WHERE id = ?", (user_id,))
            if row is None:
                raise NotFound(f"user {user_id!r} not found", param="user_id")
            twin = tx.fetchone(
                "SELECT id FROM users WHERE name = ? AND id <> ? AND password_hash IS NOT NULL",
                (row["name"], user_id))
            if twin is not None:
                raise InvalidRequest(f"another account called {row['name']!r} can already "
                                     "sign in: names must be unique to sign in", param="name")
            tx.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                       (password_hash, user_id))
            tx.execute("UPDATE web_sessions SET revoked_at = ? "
                       "WHERE user_id = ? AND revoked_at IS NULL", (now_db, user_id))

    def set_user_tier(self, user_id: str, tier: str) -> None:
        check_text(tier, "tier", max_len=64, allow_empty=False)
        with self._transaction() as tx:
            if tx.execute("UPDATE users SET tier = ? WHERE id = ?", (tier, user_id)) == 0:
                raise NotFound(f"user {user_id!r} not found", param="user_id")

    def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable (or enable again) an account: a disabled one cannot sign in, and its
        sessions end now. Its API keys are the keys' own business (revoke them)."""
        _, now_db = self._now()
        with self._transaction() as tx:
            changed = tx.execute("UPDATE users SET disabled_at = ? WHERE id = ?",
                                 (now_db if disabled else None, user_id))
            if changed == 0:
                raise NotFound(f"user {user_id!r} not found", param="user_id")
            if disabled:
                tx.execute("UPDATE web_sessions SET revoked_at = ? "
                           "WHERE user_id = ? AND revoked_at IS NULL", (now_db, user_id))

    # -- sessions ---------------------------------------------------------------------

    def create_web_session(self, user_id: str, expires: datetime) -> WebSession:
        now, now_db = self._now()
        session = WebSession(new_id(), user_id, now, expires, False)
        with self._transaction() as tx:
            tx.execute("INSERT INTO web_sessions (id, user_id, created, expires) "
                       "VALUES (?, ?, ?, ?)",
                       (session.id, user_id, now_db, self._ts_in(expires)))
        return session

    def web_session(self, session_id: str) -> WebSession | None:
        with self._transaction(write=False) as tx:
            row = tx.fetchone("SELECT id, user_id, created, expires, revoked_at "
                              "FROM web_sessions WHERE id = ?", (session_id,))
        if row is None:
            return None
        return WebSession(row["id"], row["user_id"], self._ts_out(row["created"]),
                          self._ts_out(row["expires"]), row["revoked_at"] is not None)

    def extend_web_session(self, session_id: str, expires: datetime) -> None:
        with self._transaction() as tx:
            tx.execute("UPDATE web_sessions SET expires = ? "
                       "WHERE id = ? AND revoked_at IS NULL",
                       (self._ts_in(expires), session_id))

    def revoke_web_session(self, session_id: str) -> None:
        _, now_db = self._now()
        with self._transaction() as tx:
            tx.execute("UPDATE web_sessions SET revoked_at = ? "
                       "WHERE id = ? AND revoked_at IS NULL", (now_db, session_id))

    # -- secrets ----------------------------------------------------------------------

    def server_secret(self, name: str) -> str:
        """A random secret kept under ``name``, made on first use; every process over
        this database gets the same one (the first writer wins a race)."""
        with self._transaction() as tx:
            tx.execute("INSERT INTO server_secrets (name, value) VALUES (?, ?) "
                       "ON CONFLICT (name) DO NOTHING", (name, secrets.token_urlsafe(48)))
            row = tx.fetchone("SELECT value FROM server_secrets WHERE name = ?", (name,))
        assert row is not None
        return str(row["value"])

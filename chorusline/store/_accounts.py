"""Users and API keys.

A key is ``ck_`` + 12 random hex characters (its public, indexed prefix) + ``_`` + a
43-character secret. Only the SHA-256 of the whole key is stored: a stolen database
yields no usable keys, and a fast hash is enough because the secret has 256 bits of
entropy (slow hashes exist for guessable passwords). The lookup goes by prefix and then
compares hashes with ``hmac.compare_digest``, so response time does not reveal how much
of a guessed hash matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from chorusline.protocols import NotFound
from chorusline.store._checks import check_text
from chorusline.store._sql import Row, SqlStore, new_id
from chorusline.store.models import ApiKey, IssuedApiKey, User

KEY_PREFIX = "ck_"
_PREFIX_LEN = len(KEY_PREFIX) + 12
_KEY_COLUMNS = "id, user_id, prefix, tier, is_admin, created, revoked_at"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


class AccountsMixin(SqlStore):
    def _user(self, row: Row) -> User:
        return User(
            id=row["id"],
            name=row["name"],
            custom_instructions=row["custom_instructions"],
            created=self._ts_out(row["created"]),
        )

    def _api_key(self, row: Row) -> ApiKey:
        return ApiKey(
            id=row["id"],
            user_id=row["user_id"],
            prefix=row["prefix"],
            tier=row["tier"],
            is_admin=bool(row["is_admin"]),
            created=self._ts_out(row["created"]),
            revoked_at=self._opt_ts(row["revoked_at"]),
        )

    def create_user(self, name: str, *, custom_instructions: str | None = None) -> User:
        check_text(name, "name", max_len=200, allow_empty=False)
        if custom_instructions is not None:
            check_text(custom_instructions, "custom_instructions", max_len=100_000)
        now, now_db = self._now()
        user = User(id=new_id(), name=name, custom_instructions=custom_instructions, created=now)
        with self._transaction() as tx:
            tx.execute(
                "INSERT INTO users (id, name, custom_instructions, created) VALUES (?, ?, ?, ?)",
                (user.id, name, custom_instructions, now_db),
            )
        return user

    def get_user(self, user_id: str) -> User:
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT id, name, custom_instructions, created FROM users WHERE id = ?",
                (user_id,),
            )
        if row is None:
            raise NotFound(f"user {user_id!r} not found", param="user_id")
        return self._user(row)

    def list_users(self) -> list[User]:
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                "SELECT id, name, custom_instructions, created FROM users ORDER BY created, id",
                (),
            )
        return [self._user(r) for r in rows]

    def set_custom_instructions(self, user_id: str, instructions: str | None) -> User:
        if instructions is not None:
            check_text(instructions, "custom_instructions", max_len=100_000)
        with self._transaction() as tx:
            row = tx.fetchone(
                "UPDATE users SET custom_instructions = ? WHERE id = ? "
                "RETURNING id, name, custom_instructions, created",
                (instructions, user_id),
            )
        if row is None:
            raise NotFound(f"user {user_id!r} not found", param="user_id")
        return self._user(row)

    def create_api_key(
        self, user_id: str, *, tier: str = "free", is_admin: bool = False
    ) -> IssuedApiKey:
        check_text(tier, "tier", max_len=64, allow_empty=False)
        now, now_db = self._now()
        with self._transaction() as tx:
            if tx.fetchone("SELECT 1 AS one FROM users WHERE id = ?", (user_id,)) is None:
                raise NotFound(f"user {user_id!r} not found", param="user_id")
            # 48 random bits per prefix: a collision is rare enough to simply draw again.
            while True:
                prefix = KEY_PREFIX + secrets.token_hex(6)
                if tx.fetchone("SELECT 1 AS one FROM api_keys WHERE prefix = ?", (prefix,)) is None:
                    break
            plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
            key = ApiKey(
                id=new_id(),
                user_id=user_id,
                prefix=prefix,
                tier=tier,
                is_admin=is_admin,
                created=now,
                revoked_at=None,
            )
            tx.execute(
                "INSERT INTO api_keys (id, user_id, key_hash, prefix, tier, is_admin, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.id, user_id, hash_key(plaintext), prefix, tier, is_admin, now_db),
            )
        return IssuedApiKey(key=key, plaintext=plaintext)

    def authenticate_api_key(self, plaintext: str) -> ApiKey | None:
        if not isinstance(plaintext, str) or not plaintext.startswith(KEY_PREFIX):
            return None
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                f"SELECT {_KEY_COLUMNS}, key_hash FROM api_keys WHERE prefix = ?",
                (plaintext[:_PREFIX_LEN],),
            )
        if row is None:
            return None
        if not hmac.compare_digest(str(row["key_hash"]), hash_key(plaintext)):
            return None
        key = self._api_key(row)
        return key if key.active else None

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY created, id",
                (user_id,),
            )
        return [self._api_key(r) for r in rows]

    def has_admin_key(self) -> bool:
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) AS n FROM api_keys WHERE is_admin AND revoked_at IS NULL", ()
            )
        return bool(row and int(row["n"]))

    def revoke_api_key(self, user_id: str, key_id: str) -> ApiKey:
        _, now_db = self._now()
        with self._transaction() as tx:
            tx.execute(
                "UPDATE api_keys SET revoked_at = ? "
                "WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                (now_db, key_id, user_id),
            )
            row = tx.fetchone(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ? AND user_id = ?",
                (key_id, user_id),
            )
        if row is None:
            raise NotFound(f"API key {key_id!r} not found", param="key_id")
        return self._api_key(row)

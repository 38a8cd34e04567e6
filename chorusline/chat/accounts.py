"""``Accounts``: users and API keys as a typed async facade, and the store they live in.

Authentication turns an API key into the ``Principal`` every other operation is made on
behalf of. The key commands of the CLI need users and keys but no model, so
``open_accounts`` opens the store alone: nothing here imports the runtime (or torch),
which keeps ``chorusline keys ...`` a fraction of a second instead of the seconds a model
stack takes to import. Every store call runs on a worker thread through ``Db``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import trio
from platformdirs import user_data_dir

from chorusline.chat.db import Db
from chorusline.chat.passwords import check_password, hash_password
from chorusline.chat.principal import Principal
from chorusline.chat.signin import PageSession, SignIn
from chorusline.protocols import InvalidRequest, NotFound, Unauthorized
from chorusline.ratelimit import Tiers
from chorusline.store import (
    ApiKey,
    Credentials,
    IssuedApiKey,
    SqliteStore,
    Store,
    UsageTotals,
    User,
)

#: The tier of the admin key made on first start, when the configured tiers have it.
ADMIN_TIER = "enterprise"


def default_database_url(*, create: bool = True) -> str:
    """SQLite in the user's data directory (created if missing, unless ``create`` is
    false), not the current one: a relative default made every command run from another
    folder start a new, empty database, so ``keys create`` there issued keys the server
    never saw."""
    folder = Path(user_data_dir("chorusline", appauthor=False, ensure_exists=create))
    return f"sqlite:///{folder / 'chorusline.db'}"


def open_store(url: str) -> Store:
    """The store a database URL names: ``sqlite:///PATH`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        from chorusline.store import PostgresStore  # needs psycopg: only when asked for

        return PostgresStore(url)
    raise ValueError(f"unsupported database URL {url!r} (sqlite:/// or postgresql://)")


class Accounts:
    def __init__(self, db: Db, store: Store, tiers: Tiers) -> None:
        self._db = db
        self._store = store
        self._tiers = tiers
        self._signin = SignIn(db, store, tiers)
        #: Store calls run on several worker threads: this makes ensure_admin_key's check
        #: and creation one step for every caller in this process.
        self._first_admin = trio.Lock()

    async def authenticate(self, api_key: str) -> Principal:
        """The key's owner, tier and admin flag; ``Unauthorized`` for an unknown or
        revoked key (no hint which)."""
        key = await self._db(self._store.authenticate_api_key, api_key)
        if key is None:
            raise Unauthorized("invalid or revoked API key")
        return Principal(key.user_id, key.id, self._tiers.get(key.tier), key.is_admin)

    # -- users -----------------------------------------------------------------------

    async def create_user(self, name: str, *,
                          custom_instructions: str | None = None) -> User:
        return await self._db(self._store.create_user, name,
                              custom_instructions=custom_instructions)

    async def list_users(self) -> list[User]:
        """Every user, oldest first (names need not be unique)."""
        return await self._db(self._store.list_users)

    async def get_user(self, user_id: str) -> User:
        return await self._db(self._store.get_user, user_id)

    async def set_custom_instructions(self, user_id: str,
                                      instructions: str | None) -> User:
        """What every new turn of the user's conversations is told first (after the
        conversation's own system prompt); None or "" removes them."""
        return await self._db(self._store.set_custom_instructions, user_id,
                              instructions or None)

    # -- people: passwords and page sessions (``chat.signin``) -------------------------

    async def create_person(self, name: str, password: str, *,
                            tier: str | None = None) -> User:
        """A new user who signs in with ``password`` (checked before anything is made),
        on ``tier`` (default: the server's default tier)."""
        problem = check_password(password)
        if problem is not None:
            raise InvalidRequest(problem, param="password")
        tier = self._checked_tier(tier or self._tiers.default_name)
        user = await self.create_user(name)
        await self.set_user_tier(user.id, tier)
        await self.set_password(user.id, password)
        return user

    async def set_password(self, user_id: str, password: str) -> None:
        """Set a user's password (hashed on a worker thread); their sessions end."""
        problem = check_password(password)
        if problem is not None:
            raise InvalidRequest(problem, param="password")
        hashed = await trio.to_thread.run_sync(hash_password, password)
        await self._db(self._store.set_password, user_id, hashed)

    async def set_user_tier(self, user_id: str, tier: str) -> None:
        """The tier the user's page sessions get (API keys keep their own)."""
        await self._db(self._store.set_user_tier, user_id, self._checked_tier(tier))

    async def set_disabled(self, user_id: str, disabled: bool = True) -> None:
        await self._db(self._store.set_disabled, user_id, disabled)

    async def account(self, user_id: str) -> Credentials:
        return await self._db(self._store.user_account, user_id)

    async def sign_in(self, name: str, password: str, address: str) -> PageSession:
        return await self._signin.sign_in(name, password, address)

    async def session(self, token: str) -> PageSession:
        return await self._signin.session(token)

    async def sign_out(self, token: str) -> None:
        await self._signin.sign_out(token)

    async def user_named(self, name: str, *, create: bool = False) -> User | None:
        """The oldest user called ``name``; with ``create``, a new one if there is none."""
        def find() -> User | None:
            found = next((u for u in self._store.list_users() if u.name == name), None)
            return found if found is not None or not create else self._store.create_user(name)

        return await self._db(find)

    # -- API keys --------------------------------------------------------------------

    def _checked_tier(self, tier: str) -> str:
        # A key on a tier the server does not configure would fail every request it
        # makes; refusing it here names the problem while someone is there to read it.
        if tier not in self._tiers:
            raise InvalidRequest(f"unknown tier {tier!r} (configured: "
                                 f"{', '.join(t.name for t in self._tiers)})", param="tier")
        return tier

    async def create_api_key(self, user_id: str, *, tier: str = "free",
                             is_admin: bool = False) -> IssuedApiKey:
        """The plaintext is in the answer, once; only its hash is stored."""
        return await self._db(self._store.create_api_key, user_id,
                              tier=self._checked_tier(tier), is_admin=is_admin)

    async def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """All of a user's keys, revoked ones included, oldest first."""
        return await self._db(self._store.list_api_keys, user_id)

    async def keys_by_owner(self, owner: str | None = None) -> list[tuple[User, ApiKey]]:
        """Every key with its user (only ``owner``'s, by name, if given), for operators."""
        def collect() -> list[tuple[User, ApiKey]]:
            return [(user, key) for user in self._store.list_users()
                    if owner is None or user.name == owner
                    for key in self._store.list_api_keys(user.id)]

        return await self._db(collect)

    async def revoke_api_key(self, user_id: str, key_id: str) -> ApiKey:
        """Idempotent; ``NotFound`` for another user's key."""
        return await self._db(self._store.revoke_api_key, user_id, key_id)

    async def revoke_key(self, key_id: str) -> tuple[User, ApiKey]:
        """Revoke a key by id whoever owns it (an operator's tool); idempotent."""
        def revoke() -> tuple[User, ApiKey]:
            for user in self._store.list_users():
                if any(k.id == key_id for k in self._store.list_api_keys(user.id)):
                    return user, self._store.revoke_api_key(user.id, key_id)
            raise NotFound(f"API key {key_id!r} not found", param="key_id")

        return await self._db(revoke)

    async def ensure_admin_key(self) -> IssuedApiKey | None:
        """On a first start (no live admin key yet): a new ``admin`` user and an admin
        key for it, to print once; None when one exists. Callers in one process take
        turns, so two of them cannot both create one (several processes on one database
        must leave it to one of them: ``serve --workers`` makes it in the parent)."""
        tier = ADMIN_TIER if ADMIN_TIER in self._tiers else self._tiers.default_name

        def ensure() -> IssuedApiKey | None:
            if self._store.has_admin_key():
                return None
            admin = self._store.create_user("admin")
            return self._store.create_api_key(admin.id, tier=tier, is_admin=True)

        async with self._first_admin:
            return await self._db(ensure)

    async def usage(self, user_id: str, since: datetime, until: datetime
                    ) -> tuple[UsageTotals, list[tuple[ApiKey, UsageTotals]]]:
        """The user's usage in ``[since, until)``: all of it (keys and page sessions
        alike), and each of their API keys' share."""
        def collect() -> tuple[UsageTotals, list[tuple[ApiKey, UsageTotals]]]:
            total = self._store.usage_totals(user_id=user_id, since=since, until=until)
            return total, [(key, self._store.usage_totals(api_key_id=key.id, since=since,
                                                          until=until))
                           for key in self._store.list_api_keys(user_id)]

        return await self._db(collect)

    async def close_orphaned_drafts(self) -> int:
        """Close every reply draft a dead process left open (``incomplete`` /
        ``interrupted``), as a server does at start; returns how many. Run it only when
        no other process can be streaming into this store."""
        return len(await self._db(self._store.mark_interrupted_drafts))


@asynccontextmanager
async def open_accounts(database_url: str, *,
                        tiers: Tiers | None = None) -> AsyncIterator[Accounts]:
    """Accounts over the database at ``database_url`` and nothing else (no model, no
    actors): what ``chorusline keys`` needs. The store is closed on exit."""
    store = await trio.to_thread.run_sync(open_store, database_url)
    try:
        yield Accounts(Db(threads=2), store, tiers or Tiers.defaults())
    finally:
        await trio.to_thread.run_sync(store.close)

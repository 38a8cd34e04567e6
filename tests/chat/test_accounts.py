"""``Accounts`` on a real SQLite store: keys become principals with their tier and admin
flag, revocation is immediate, the first-start admin key is made once; and
``open_accounts`` / ``default_database_url`` open only the store, in the user's data
directory by default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from psycopg.conninfo import conninfo_to_dict

from chorusline.chat.accounts import Accounts, default_database_url, open_accounts, open_store
from chorusline.chat.db import Db
from chorusline.protocols import InvalidRequest, NotFound, Unauthorized
from chorusline.ratelimit import Tiers
from chorusline.store import SqliteStore


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    store = SqliteStore(tmp_path / "chat.db")
    yield Accounts(Db(), store, Tiers.defaults())
    store.close()


async def test_a_key_authenticates_as_its_owner_until_revoked(accounts: Accounts) -> None:
    ada = await accounts.create_user("ada", custom_instructions="Be kind.")
    assert (await accounts.get_user(ada.id)).custom_instructions == "Be kind."
    plain = await accounts.create_api_key(ada.id, tier="plus")
    admin = await accounts.create_api_key(ada.id, tier="enterprise", is_admin=True)
    who = await accounts.authenticate(plain.plaintext)
    assert (who.user_id, who.api_key_id, who.tier.name, who.admin) == (
        ada.id, plain.key.id, "plus", False)
    assert (await accounts.authenticate(admin.plaintext)).admin is True
    assert [k.id for k in await accounts.list_api_keys(ada.id)] == [plain.key.id,
                                                                    admin.key.id]
    revoked = await accounts.revoke_api_key(ada.id, plain.key.id)
    assert revoked.revoked_at is not None
    for bad in (plain.plaintext, "ck_nonsense", "", plain.plaintext[:-1] + "x"):
        with pytest.raises(Unauthorized):
            await accounts.authenticate(bad)
    assert (await accounts.authenticate(admin.plaintext)).user_id == ada.id


async def test_keys_only_on_configured_tiers_and_only_for_their_owner(
    accounts: Accounts,
) -> None:
    ada, bob = await accounts.create_user("ada"), await accounts.create_user("bob")
    with pytest.raises(InvalidRequest) as refused:
        await accounts.create_api_key(ada.id, tier="gold")
    assert refused.value.param == "tier"
    assert await accounts.list_api_keys(ada.id) == []
    key = await accounts.create_api_key(ada.id)
    with pytest.raises(NotFound):
        await accounts.revoke_api_key(bob.id, key.key.id)
    assert (await accounts.authenticate(key.plaintext)).user_id == ada.id


async def test_operator_lookups_by_name_and_key_id(accounts: Accounts) -> None:
    assert await accounts.user_named("ada") is None
    ada = await accounts.user_named("ada", create=True)
    assert ada is not None and await accounts.user_named("ada", create=True) == ada
    bob = await accounts.create_user("bob")
    first = await accounts.create_api_key(ada.id)
    second = await accounts.create_api_key(bob.id, tier="plus")
    assert [(u.name, k.id) for u, k in await accounts.keys_by_owner()] == [
        ("ada", first.key.id), ("bob", second.key.id)]
    assert [k.id for _, k in await accounts.keys_by_owner("bob")] == [second.key.id]
    owner, revoked = await accounts.revoke_key(second.key.id)
    assert owner == bob and revoked.revoked_at is not None
    assert (await accounts.revoke_key(second.key.id))[1].revoked_at == revoked.revoked_at
    with pytest.raises(NotFound) as missing:
        await accounts.revoke_key("no-such-key")
    assert missing.value.param == "key_id"
    assert [u.name for u in await accounts.list_users()] == ["ada", "bob"]


async def test_the_first_start_admin_key_is_made_once_even_by_racing_callers(
    accounts: Accounts,
) -> None:
    made = []

    async def ensure() -> None:
        made.append(await accounts.ensure_admin_key())

    async with trio.open_nursery() as nursery:
        for _ in range(8):  # at once: Db runs their store calls on several threads
            nursery.start_soon(ensure)
    issued = [m for m in made if m is not None]
    assert len(issued) == 1 and issued[0].key.is_admin and issued[0].key.tier == "enterprise"
    assert (await accounts.authenticate(issued[0].plaintext)).admin is True
    assert await accounts.ensure_admin_key() is None


async def test_the_admin_key_takes_the_default_tier_when_enterprise_is_not_configured(
    tmp_path: Path,
) -> None:
    tiers = Tiers.from_mapping({"default": "only", "tiers": {"only": {
        "requests_per_minute": 5, "tokens_per_minute": 500, "max_concurrent_streams": 1,
        "priority": 0}}})
    store = SqliteStore(tmp_path / "chat.db")
    try:
        accounts = Accounts(Db(), store, tiers)
        issued = await accounts.ensure_admin_key()
        assert issued is not None and issued.key.tier == "only"
        assert (await accounts.authenticate(issued.plaintext)).tier.name == "only"
    finally:
        store.close()


async def test_open_accounts_opens_the_store_alone_and_closes_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    async with open_accounts(url) as accounts:
        user = await accounts.create_user("ada")
        issued = await accounts.create_api_key(user.id)
    async with open_accounts(url) as again:
        assert (await again.authenticate(issued.plaintext)).user_id == user.id
    with pytest.raises(ValueError, match="unsupported database URL"):
        async with open_accounts("mysql://x"):
            pass


def test_open_store_names_the_backend_by_url(tmp_path: Path, postgres_url: str) -> None:
    sqlite = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert isinstance(sqlite, SqliteStore) and (tmp_path / "x.db").exists()
    finally:
        sqlite.close()
    postgres = open_store(postgres_url)
    try:
        postgres.ping()
        assert type(postgres).__name__ == "PostgresStore"
    finally:
        postgres.close()


@pytest.fixture
def postgres_url(make_postgres_database: Callable[[], str]) -> str:
    """A throw-away database as the ``postgresql://`` URL that ``--database-url`` takes."""
    info = conninfo_to_dict(make_postgres_database())
    secret = f":{info['password']}" if info.get("password") else ""
    auth = f"{info['user']}{secret}@" if info.get("user") else ""
    return (f"postgresql://{auth}{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}"
            f"/{info['dbname']}")


def test_the_default_database_lives_in_the_user_data_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """Not in the current directory: from anywhere, the same database."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "chorusline"
    url = default_database_url(create=False)
    assert url == f"sqlite:///{folder / 'chorusline.db'}" and not folder.exists()
    assert default_database_url() == url and folder.is_dir()
    assert list(tmp_path.glob("*.db")) == []

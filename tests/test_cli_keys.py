"""``chorusline keys create|list|revoke`` against a SQLite file, as subprocesses; a
revoked key is refused by a server already running on the same database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli_server import running_server


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}")
    return subprocess.run([sys.executable, "-m", "chorusline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def listed(db: Path, *args: str) -> list[list[str]]:
    result = cli(db, "keys", "list", *args)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "OWNER", "PREFIX", "TIER", "ADMIN", "REVOKED"]
    return [row.split() for row in rows]


def test_create_list_and_revoke(tmp_path: Path) -> None:
    db = tmp_path / "keys.db"
    created = cli(db, "keys", "create", "--owner", "ada", "--tier", "plus")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"ck_[0-9a-f]{12}_\S+", key)
    admin = cli(db, "keys", "create", "--owner", "ada", "--admin")
    other = cli(db, "keys", "create", "--owner", "bob", "--tier", "enterprise")
    assert admin.returncode == other.returncode == 0
    everything = listed(db)
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in everything] == [
        ("ada", key[:15], "plus", "no", "no"),
        ("ada", admin.stdout.strip()[:15], "free", "yes", "no"),
        ("bob", other.stdout.strip()[:15], "enterprise", "no", "no"),
    ]
    shown = cli(db, "keys", "list").stdout
    assert all(s not in shown for s in (key, admin.stdout.strip(), other.stdout.strip()))
    assert [r[1] for r in listed(db, "--owner", "ada")] == ["ada", "ada"]  # one user reused
    assert listed(db, "--owner", "nobody") == []

    revoked = cli(db, "keys", "revoke", everything[0][0])
    assert revoked.returncode == 0, revoked.stderr
    assert everything[0][0] in revoked.stdout
    rows = listed(db)
    assert rows[0][5] != "no" and [r[5] for r in rows[1:]] == ["no", "no"]
    assert cli(db, "keys", "revoke", everything[0][0]).returncode == 0  # idempotent


@pytest.mark.parametrize(("args", "code", "message"), [
    (["keys", "revoke", "no-such-key"], 1, "API key 'no-such-key' not found"),
    (["keys", "create", "--owner", "ada", "--tier", "gold"], 2, "invalid choice: 'gold'"),
    (["keys", "create"], 2, "the following arguments are required: --owner"),
    (["keys", "create", "--owner", " "], 2, "--owner must not be empty"),
    (["keys"], 2, "the following arguments are required: keys_command"),
    (["keys", "--database-url", "mysql://x", "list"], 1, "unsupported database URL"),
    (["keys", "list", "--database-url", "sqlite:///no/such/dir/x.db"], 1,
     "unable to open database file"),
])
def test_bad_input_is_a_one_line_error(tmp_path: Path, args: list[str], code: int,
                                       message: str) -> None:
    result = cli(tmp_path / "keys.db", *args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert message in result.stderr.strip().splitlines()[-1]
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1


def models_status(url: str, key: str) -> int:
    request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_a_running_server_refuses_a_key_once_revoked(tmp_path: Path) -> None:
    db = tmp_path / "srv.db"
    with running_server(db) as (url, _admin):
        key = cli(db, "keys", "create", "--owner", "ada").stdout.strip()
        assert models_status(url, key) == 200
        key_id = next(r[0] for r in listed(db, "--owner", "ada"))
        assert cli(db, "keys", "revoke", key_id).returncode == 0
        assert models_status(url, key) == 401


def test_keys_reach_one_database_from_any_folder(tmp_path: Path) -> None:
    """The default database is in the user's data directory: run from two folders, the
    key commands see the same keys, and neither folder gets a database file."""
    env = {k: v for k, v in os.environ.items() if k != "CHORUSLINE_DATABASE_URL"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()

    def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chorusline.cli", *args], cwd=folder,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    created = run(here, "keys", "create", "--owner", "ada")
    assert created.returncode == 0, created.stderr
    shown = run(there, "keys", "list")
    assert shown.returncode == 0, shown.stderr
    assert created.stdout.strip()[:15] in shown.stdout
    assert list(here.iterdir()) == list(there.iterdir()) == []
    assert (tmp_path / "data" / "chorusline" / "chorusline.db").is_file()


def test_key_commands_never_import_the_model_stack(tmp_path: Path) -> None:
    """``keys`` loads no model, so it must not pay for importing one (torch alone takes
    seconds): the runtime, torch and the web server stay unimported."""
    code = ("import sys; from chorusline.cli import main; status = main(['keys', 'list']); "
            "print(sorted(m for m in ('torch', 'chorusline.runtime.engine', 'quart', "
            "'hypercorn', 'chorusline.web') if m in sys.modules)); sys.exit(status)")
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'keys.db'}")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout

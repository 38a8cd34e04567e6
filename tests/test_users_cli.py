"""``chorusline users``: accounts for people, straight on the database, one-line errors,
passwords never on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHORUSLINE_DATABASE_URL=f"sqlite:///{db}")
    return subprocess.run([sys.executable, "-m", "chorusline.cli", "users", *args],
                          input=stdin, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def rows(db: Path) -> list[list[str]]:
    listed = cli(db, "list")
    assert listed.returncode == 0, listed.stderr
    header, *body = listed.stdout.splitlines()
    assert header.split() == ["NAME", "TIER", "SIGNS", "IN", "DISABLED", "ID"]
    return [row.split()[:4] for row in body]


def test_create_list_disable_enable_and_set_password(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    made = cli(db, "create", "ada", "--tier", "plus", "--password-stdin",
               stdin="correct horse\n")
    assert made.returncode == 0, made.stderr
    assert rows(db) == [["ada", "plus", "yes", "no"]]
    assert cli(db, "disable", "ada").returncode == 0
    assert rows(db) == [["ada", "plus", "yes", "yes"]]
    assert cli(db, "enable", "ada").returncode == 0
    again = cli(db, "set-password", "ada", "--password-stdin", stdin="battery staple\n")
    assert again.returncode == 0, again.stderr
    assert "correct horse" not in made.stdout + made.stderr + again.stdout


def test_failures_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    cli(db, "create", "ada", "--password-stdin", stdin="correct horse\n")
    for args, stdin, message in [
        (("create", "ada", "--password-stdin"), "another one\n", "exists already"),
        (("create", "bob", "--password-stdin"), "short\n", "at least 8 characters"),
        (("create", "bob"), "", "use --password-stdin"),
        (("disable", "nobody"), "", "no user called 'nobody'"),
        (("set-password", "nobody", "--password-stdin"), "long enough\n", "no user"),
    ]:
        result = cli(db, *args, stdin=stdin)
        assert result.returncode == 1, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert rows(db) == [["ada", "free", "yes", "no"]]
    usage = cli(db, "create")
    assert usage.returncode == 2 and "name" in usage.stderr

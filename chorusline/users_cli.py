"""``chorusline users create|list|disable|enable|set-password``: people who sign in.

Like ``keys``, it works straight on the database (no model, no server), and every
failure is one line. A password is never an argument (it would show in ``ps`` and the
shell's history): it is asked twice at a terminal, or read as one line from standard
input with ``--password-stdin`` (for scripts). Setting a password ends the account's
page sessions; disabling it ends them and refuses new ones (its API keys are revoked
with ``keys revoke``).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from chorusline.chat import Accounts, User, open_accounts

TIERS = ("free", "plus", "enterprise")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    """Add ``users`` to ``commands``; the caller adds --database-url to what it returns."""
    run = commands.add_parser("users", help="people who sign in to the page")
    sub = run.add_subparsers(dest="users_command", required=True)
    create = sub.add_parser("create", help="a new account (asks for its password)")
    create.add_argument("name")
    create.add_argument("--tier", choices=TIERS, default="free", help="default: free")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password as one line from standard input")
    sub.add_parser("list", help="accounts: name, tier, can sign in, disabled")
    for verb, text in (("disable", "refuse sign-in and end its sessions"),
                       ("enable", "allow sign-in again")):
        sub.add_parser(verb, help=text).add_argument("name")
    password = sub.add_parser("set-password", help="set a password (ends its sessions)")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the password as one line from standard input")
    return run


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


async def named(accounts: Accounts, name: str) -> User:
    user = await accounts.user_named(name)
    if user is None:
        raise ValueError(f"no user called {name!r}")
    return user


async def users(args: argparse.Namespace) -> None:
    """Run ``chorusline users ...``; errors are raised for the caller's one line."""
    async with open_accounts(args.database_url) as accounts:
        command = args.users_command
        if command == "create":
            if not args.name.strip():
                raise ValueError("the name must not be empty")
            if await accounts.user_named(args.name) is not None:
                raise ValueError(f"a user called {args.name!r} exists already: use "
                                 "'chorusline users set-password'")
            user = await accounts.create_person(args.name, read_password(args.password_stdin),
                                                tier=args.tier)
            print(f"created {user.name!r} (tier {args.tier}); they sign in at /login")
        elif command == "list":
            rows = [("NAME", "TIER", "SIGNS IN", "DISABLED", "ID")]
            for user in await accounts.list_users():
                account = await accounts.account(user.id)
                rows.append((user.name, account.tier,
                             "yes" if account.password_hash else "no",
                             "yes" if account.disabled else "no", user.id))
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        elif command in ("disable", "enable"):
            user = await named(accounts, args.name)
            await accounts.set_disabled(user.id, command == "disable")
            print(f"{command}d {user.name!r}")
        else:
            user = await named(accounts, args.name)
            await accounts.set_password(user.id, read_password(args.password_stdin))
            print(f"set the password of {user.name!r}; their sessions ended")

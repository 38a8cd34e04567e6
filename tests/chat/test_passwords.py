"""Password hashes: scrypt with its parameters and salt in the hash, verified in
constant time, and nothing accepted that should not be."""

from __future__ import annotations

from chorusline.chat.passwords import check_password, hash_password, verify_password

FAST = {"n": 2**10, "r": 8, "p": 1}  # the same code path, cheap parameters


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse", **FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsf", stored)
    assert hash_password("correct horse", **FAST) != stored  # a fresh salt each time


def test_the_default_parameters_are_owasps_minimum() -> None:
    assert hash_password("correct horse").split("$")[1:4] == ["131072", "8", "1"]


def test_malformed_or_missing_hashes_never_verify() -> None:
    for stored in (None, "", "plain", "bcrypt$x$y$z$a$b", "scrypt$x$8$1$AA$AA",
                   "scrypt$1024$8$1$!!$!!"):
        assert not verify_password("correct horse", stored)
    assert not verify_password("x" * 2000, hash_password("correct horse", **FAST))


def test_weak_passwords_are_named() -> None:
    assert check_password("short") == "a password needs at least 8 characters"
    assert check_password("x" * 1025) == "a password has at most 1024 characters"
    assert check_password("long enough") is None

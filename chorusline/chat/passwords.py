"""Password hashes: scrypt from the standard library, with the parameters in the hash.

scrypt is memory-hard (each guess costs ``128 * n * r`` bytes of memory as well as time),
which is what makes a stolen table of hashes expensive to attack on GPUs; it is in
``hashlib`` (OpenSSL), so no native package is needed. The parameters are OWASP's
recommended minimum for scrypt: n = 2**17, r = 8, p = 1 (128 MiB and about a tenth of a
second per hash here). Each hash records its own parameters and a 16-byte random salt
(``scrypt$n$r$p$salt$key``, base64 without padding), so stronger parameters later apply
to new passwords without breaking old ones, and verification compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**17, 8, 1
KEY_BYTES = 32
#: Enough for n = 2**17, r = 8 (128 MiB) with room; OpenSSL refuses without it.
MAX_MEMORY = 256 * 1024 * 1024
#: Shorter than this is refused outright; longer than the maximum is a typo or an attack
#: (the hash reads every byte).
MIN_LENGTH, MAX_LENGTH = 8, 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def check_password(password: str) -> str | None:
    """Why ``password`` cannot be used, in one line; None when it can."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    return None


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                         maxmem=MAX_MEMORY)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; False for no hash or a malformed one."""
    if stored is None or not isinstance(password, str) or len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected), maxmem=MAX_MEMORY)
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)

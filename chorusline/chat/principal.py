"""Who is asking: the authenticated identity every chat operation is made on behalf of.

Every operation takes one, and the store is always asked with its ``user_id``, so one
user can never reach another's data whichever door (API key, web session) they came in.
"""

from __future__ import annotations

from dataclasses import dataclass

from chorusline.ratelimit import Tier


@dataclass(frozen=True)
class Principal:
    user_id: str
    api_key_id: str
    tier: Tier
    admin: bool = False
    #: Signed in with a password (the page's cookie) rather than holding an API key:
    #: only a person can mint or revoke keys, so a leaked key cannot make itself a
    #: successor that outlives its revocation.
    page_session: bool = False

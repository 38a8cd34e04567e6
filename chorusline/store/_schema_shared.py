"""Migrations written once for both databases: they differ only in the timestamp type
(SQLite keeps integer microseconds, PostgreSQL ``TIMESTAMPTZ``), which ``{ts}`` stands
for and ``for_database`` fills in."""

from __future__ import annotations

#: Thumbs up / down on assistant messages, one per message (the owner's), with a comment.
FEEDBACK = """
CREATE TABLE message_feedback (
    message_id TEXT PRIMARY KEY REFERENCES messages (id),
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT,
    created {ts} NOT NULL,
    updated {ts} NOT NULL
);
CREATE INDEX message_feedback_conversation ON message_feedback (conversation_id);
"""

#: The branch a conversation shows and continues: NULL means "the newest message's", and
#: every new message sets it back to NULL (it is then the newest); switching branches
#: sets it to the chosen branch's leaf.
ACTIVE_LEAF_COLUMN = """
ALTER TABLE conversations ADD COLUMN active_leaf_message_id TEXT;
"""

#: People sign in to the page with a name and password: the password's slow hash, the
#: tier their page sessions get, when the account was disabled; page sessions (the id a
#: session cookie names, so logout revokes it server-side) and the server's own secrets
#: (the key that signs session cookies, shared by every process over this database).
CREDENTIALS = """
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN tier TEXT NOT NULL DEFAULT 'free';
ALTER TABLE users ADD COLUMN disabled_at {ts};
CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created {ts} NOT NULL,
    expires {ts} NOT NULL,
    revoked_at {ts}
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def for_database(script: str, timestamp: str) -> str:
    return script.replace("{ts}", timestamp)

"""SQLite schema migrations, oldest first; never edit one that has shipped, add another.

Times are integer microseconds since the Unix epoch: exact (cursors compare them for
equality), sortable, and free of SQLite's lack of a real timestamp type.
"""

from __future__ import annotations

from chorusline.store._schema_shared import (
    ACTIVE_LEAF_COLUMN,
    CREDENTIALS,
    FEEDBACK,
    for_database,
)
from chorusline.store.migrations import Migration

INITIAL = """
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    custom_instructions TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    key_hash TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id, created);
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL DEFAULT '',
    system_prompt TEXT,
    model TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    deleted_at INTEGER,
    share_token TEXT UNIQUE,
    share_leaf_message_id TEXT,
    share_created INTEGER,
    parent_conversation_id TEXT REFERENCES conversations (id),
    branch_point_message_id TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX conversations_listing
    ON conversations (user_id, archived, updated DESC, id DESC) WHERE deleted_at IS NULL;
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq INTEGER NOT NULL,
    parent_message_id TEXT REFERENCES messages (id),
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('complete', 'incomplete', 'blocked')),
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    finish_reason TEXT,
    model TEXT,
    request_id TEXT,
    created INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX messages_parent ON messages (parent_message_id);
CREATE INDEX messages_open_drafts ON messages (conversation_id)
    WHERE status = 'incomplete' AND finish_reason IS NULL;
CREATE TABLE usage_events (
    id INTEGER PRIMARY KEY,
    api_key_id TEXT,
    user_id TEXT NOT NULL,
    conversation_id TEXT,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    ttft_ms REAL,
    latency_ms REAL,
    created INTEGER NOT NULL
);
CREATE INDEX usage_events_user ON usage_events (user_id, created);
CREATE INDEX usage_events_key ON usage_events (api_key_id, created);
CREATE TABLE moderation_events (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT,
    message_id TEXT,
    stage TEXT NOT NULL CHECK (stage IN ('input', 'output')),
    category TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX moderation_events_conversation ON moderation_events (conversation_id, created);
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL REFERENCES users (id),
    key TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    user_message_id TEXT,
    assistant_message_id TEXT,
    response TEXT,
    created INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
"""

#: The request id (``chatcmpl-…``) of the turn a usage row counts, so one id ties the
#: response, the logs and the bill together.
USAGE_REQUEST_ID = """
ALTER TABLE usage_events ADD COLUMN request_id TEXT;
"""

#: The client's end user a turn was made for (OpenAI's ``user`` field), so usage can be
#: attributed below one API key.
USAGE_END_USER = """
ALTER TABLE usage_events ADD COLUMN end_user TEXT;
"""

#: Tool calling in stored conversations: a ``tool`` role, an assistant message's calls
#: (JSON text ``[{"id", "name", "arguments"}]``, NULL when none) and the call a tool
#: message answers. SQLite cannot alter a CHECK constraint, so ``messages`` is rebuilt
#: (SQLite's documented procedure: new table, copy, drop, rename, indexes again); the
#: runner turns foreign keys off around it and checks them before committing.
TOOL_CALLS = """
CREATE TABLE messages_v4 (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    seq INTEGER NOT NULL,
    parent_message_id TEXT REFERENCES messages (id),
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('complete', 'incomplete', 'blocked')),
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    finish_reason TEXT,
    model TEXT,
    request_id TEXT,
    created INTEGER NOT NULL,
    tool_calls TEXT,
    tool_call_id TEXT,
    UNIQUE (conversation_id, seq),
    CONSTRAINT messages_tool_calls_check CHECK (tool_calls IS NULL OR role = 'assistant'),
    CONSTRAINT messages_tool_call_id_check CHECK ((role = 'tool') = (tool_call_id IS NOT NULL))
);
INSERT INTO messages_v4 (id, conversation_id, seq, parent_message_id, role, content, status,
    prompt_tokens, completion_tokens, finish_reason, model, request_id, created)
SELECT id, conversation_id, seq, parent_message_id, role, content, status, prompt_tokens,
    completion_tokens, finish_reason, model, request_id, created FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v4 RENAME TO messages;
CREATE INDEX messages_parent ON messages (parent_message_id);
CREATE INDEX messages_open_drafts ON messages (conversation_id)
    WHERE status = 'incomplete' AND finish_reason IS NULL;
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration.from_script(1, "initial", INITIAL),
    Migration.from_script(2, "usage request id", USAGE_REQUEST_ID),
    Migration.from_script(3, "usage end user", USAGE_END_USER),
    Migration.from_script(4, "tool calls", TOOL_CALLS),
    Migration.from_script(5, "message feedback", for_database(FEEDBACK, "INTEGER")),
    Migration.from_script(6, "active leaf", ACTIVE_LEAF_COLUMN),
    Migration.from_script(7, "credentials", for_database(CREDENTIALS, "INTEGER")),
)

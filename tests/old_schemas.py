"""Database files as quartchat's schema 1 wrote them, for the migration tests.

Kept here as they were, not taken from the code, so a migration test keeps
testing an old file however the code's own schema moves on.
"""

from __future__ import annotations

#: Schema 1's tables, its epoch and two users (alice ``u-a``, bob ``u-b``).
SCHEMA_1 = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE users (id TEXT PRIMARY KEY, nick TEXT NOT NULL,"
    " token_hash TEXT NOT NULL, created INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX idx_users_token_hash ON users (token_hash)",
    "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " sender TEXT NOT NULL REFERENCES users(id), nick TEXT NOT NULL,"
    " recipient TEXT REFERENCES users(id), recipient_nick TEXT, text TEXT NOT NULL,"
    " ts INTEGER NOT NULL, client_offset TEXT NOT NULL, UNIQUE (sender, client_offset))",
    "CREATE INDEX idx_messages_recipient_id ON messages (recipient, id)",
    "INSERT INTO meta VALUES ('epoch', 'e-old')",
    "INSERT INTO users VALUES ('u-a', 'alice', 'h-a', 1), ('u-b', 'bob', 'h-b', 2)",
]
#: Inserts messages into a schema-1 file (the values follow it).
INSERT_MESSAGES = (
    "INSERT INTO messages (sender, nick, recipient, recipient_nick, text, ts, client_offset)"
    " VALUES "
)

"""The texts of a prompt set the server holds, as the result store keeps them.

A sweep that asks a server's named set reads the set's texts once (``GetPromptSet``) and keeps
them in the table ``prompt_texts`` (the set's content hash as the server computes it, each
prompt's index, the sha256 of its text in the store's ``texts``). A completion stored without its
own prompt text then reads it from there through its record's ``prompt_set_sha256`` (:data:`JOIN`,
the completion alias ``c``, the prompt text ``s.zlib``), so reports and exports show every prompt.
:class:`~.store.ResultStore` creates the table when it opens a store.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Sequence

from safety_landscape.common.prompt_files import PromptSet

__all__ = ["JOIN", "SCHEMA", "put_prompt_texts", "text_sha256"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS prompt_texts (
    set_sha256 TEXT NOT NULL, prompt_index INTEGER NOT NULL, text_sha256 TEXT NOT NULL,
    PRIMARY KEY (set_sha256, prompt_index)
);
"""

#: How a completion row (alias ``c``) stored without its prompt finds its set's text (``s.zlib``).
JOIN = (" LEFT JOIN points pt ON pt.key = c.key AND c.prompt_sha256 IS NULL"
        " LEFT JOIN prompt_texts ps ON ps.prompt_index = c.prompt_index"
        " AND ps.set_sha256 = json_extract(pt.record, '$.detail.prompt_set_sha256')"
        " LEFT JOIN texts s ON s.sha256 = ps.text_sha256")


def text_sha256(text: str) -> str:
    """The key of a text in the store's ``texts`` table."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def put_prompt_texts(db: sqlite3.Connection, prompts: Sequence[str]) -> str:
    """Keep ``prompts`` (a set's texts, in its order) under the set's content hash; returns the hash.
    Kept once: a second put is a no-op."""
    sha = PromptSet("texts", tuple(prompts), "", "harmful").sha256
    shas = [text_sha256(p) for p in prompts]
    db.executemany("INSERT OR IGNORE INTO texts (sha256, zlib) VALUES (?, ?)",
                   [(t, zlib.compress(p.encode("utf-8"), 6)) for t, p in zip(shas, prompts, strict=True)])
    db.executemany("INSERT OR IGNORE INTO prompt_texts VALUES (?, ?, ?)", [(sha, i, t) for i, t in enumerate(shas)])
    return sha

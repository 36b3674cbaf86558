"""The stop test's view of a sequence's text: the part no continuation of its tokens can change.

``TextSettler`` computes it from scratch for a list of token lists; ``IncrementalText`` keeps it
for the rows of a generating batch and decodes only a few tokens per row and step, so the cost of
the keyword stop test does not grow with the length generated (decoding every row's whole
completion at every step is O(T^2) per row: 80 rows x 512 tokens is several ms a step, a
noticeable share of a GPU decode step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT_CHAR = "\ufffd"


class TextSettler:
    """The part of ``decode(tokens)`` that no continuation of ``tokens`` can change.

    Decoding a prefix of the tokens is not always a prefix of the final text:
      - byte-level BPE (and SentencePiece byte fallback) decode an incomplete UTF-8 character at
        the end as U+FFFD, which becomes a real character once its last byte arrives;
      - tokenizers that clean up tokenisation spaces (" ." -> ".", " 's" -> "'s", ...) rewrite
        text across the boundary with the next token.
    ``settled`` decodes without clean-up, drops trailing U+FFFD (bytes before an incomplete
    character decode the same whatever follows: UTF-8 is self-synchronising), then, only when
    this tokenizer does clean up, applies its clean-up and drops a tail of ``CLEANUP_MARGIN``
    characters (each of its 10 patterns is at most 4 characters and only deletes spaces, so a
    change at the boundary reaches at most 3 characters further left per pattern: 30).
    The result is a prefix of the decoded text of every continuation, the final one included.
    Assumption, true of the decoders of causal-LM tokenizers in use (ByteLevel, Metaspace,
    ByteFallback, Fuse, Strip, Replace): each token's text depends on the token (and on whether
    it is the first), not on the tokens after it, except through the two effects above.
    """

    CLEANUP_MARGIN = 32

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.cleans_up = _cleans_up(tokenizer)

    def settled(self, token_lists: Sequence[list[int]]) -> list[str]:
        raws = self.tokenizer.batch_decode(token_lists, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [self.settle_raw(raw) for raw in raws]

    def settle_raw(self, raw: str) -> str:
        """The settled part of a raw decode (``skip_special_tokens``, no clean-up)."""
        text = raw.rstrip(REPLACEMENT_CHAR)
        if self.cleans_up:
            text = self.tokenizer.clean_up_tokenization(text)[: -self.CLEANUP_MARGIN]
        return text


def _cleans_up(tokenizer: Any) -> bool:
    """Whether ``decode`` rewrites tokenisation spaces (found by trying, not by reading flags)."""
    probe = "a . b ' s c 're d ,"
    try:
        ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
        default = tokenizer.decode(ids, skip_special_tokens=True)
        raw = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    except Exception:  # a tokenizer that cannot say: assume it does (only delays the stop)
        return True
    return bool(default != raw)


class IncrementalText:
    """``TextSettler.settled`` for growing token lists, decoding only their newest tokens.

    Per row it keeps a committed point: ``count`` tokens whose raw text (no clean-up) is
    ``text`` and does not end inside a UTF-8 character. The raw text of the row's tokens is then
    ``text`` + what the new tokens add, found by decoding ``tokens[a:count]`` and ``tokens[a:]``
    from an anchor ``a`` a few tokens back and taking the second's extra characters. Both decodes
    start at the same token, so whatever the decoder does to a first token (Metaspace's or
    Strip's leading space) happens to both alike; by the same assumption ``TextSettler`` makes
    (a token's text depends only on itself and on being first), the extra characters are the new
    tokens' text. Where that cannot be checked (the shorter decode is empty or not a prefix of
    the longer, or the committed text would end in U+FFFD) the row is decoded in full, as
    ``TextSettler`` does. The settled text is then made from the raw text exactly as
    ``TextSettler`` makes it.
    """

    ANCHOR = 4  # tokens decoded before the committed point, so first-token effects stay behind it

    def __init__(self, settler: TextSettler, rows: int) -> None:
        self.settler = settler
        self.count = [0] * rows
        self.text = [""] * rows
        self.full_decodes = 0  # rows that needed a full decode (the tests read it)

    def settled(self, rows: Sequence[int], token_lists: Sequence[Sequence[int]]) -> list[str]:
        """The settled text of each given row, whose tokens are ``token_lists`` (row by row)."""
        tok = self.settler.tokenizer
        pairs: list[list[int]] = []
        for row, tokens in zip(rows, token_lists, strict=True):
            anchor = max(0, self.count[row] - self.ANCHOR)
            pairs.append(list(tokens[anchor : self.count[row]]))
            pairs.append(list(tokens[anchor:]))
        decoded = tok.batch_decode(pairs, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        raws, redo = [], []
        for i, row in enumerate(rows):
            head, tail = decoded[2 * i], decoded[2 * i + 1]
            # An empty head from an anchor past the start (special tokens only, say) would make
            # the tail's first token "first" where it is not: decode such a row in full.
            anchor_holds = bool(head) or self.count[row] <= self.ANCHOR
            if anchor_holds and tail.startswith(head) and not head.endswith(REPLACEMENT_CHAR):
                raws.append(self.text[row] + tail[len(head) :])
            else:
                raws.append(None)
                redo.append(i)
        if redo:
            self.full_decodes += len(redo)
            full = tok.batch_decode([list(token_lists[i]) for i in redo], skip_special_tokens=True,
                                    clean_up_tokenization_spaces=False)
            for i, raw in zip(redo, full, strict=True):
                raws[i] = raw
        for row, tokens, raw in zip(rows, token_lists, raws, strict=True):
            if not raw.endswith(REPLACEMENT_CHAR):  # a clean boundary: commit it
                self.count[row], self.text[row] = len(tokens), raw
        return [self.settler.settle_raw(raw) for raw in raws]

"""IncrementalText (decoding only each row's newest tokens) against a full decode, token by token,
for the decoder families of causal-LM tokenizers: byte-level BPE (tiny-random's), SentencePiece-
style Metaspace with byte fallback, and a tokenizer that cleans up tokenisation spaces. Sequences
mix whole words, multi-byte characters split across tokens, stray bytes and special tokens."""

from __future__ import annotations

import copy
import random

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from safety_landscape.server.engine.settle import IncrementalText, TextSettler
from safety_landscape.server.models.loading import load_model, resolve_model

TEXT = "I 'm sure. Here is how: caf\u00e9, na\u00efve \u20ac5 \U0001f600 -- don't ask, I can't help; \u4f60\u597d!"


@pytest.fixture(scope="module")
def byte_level():
    return load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").tokenizer


def metaspace_byte_fallback() -> PreTrainedTokenizerFast:
    """A Llama-2-like tokenizer built in code: Metaspace pieces, <0xXX> byte fallback, Strip."""
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    words = ["\u2581I", "\u2581'm", "\u2581sure", ".", "\u2581Here", "\u2581is", "\u2581how", ":", "\u2581caf", "\u2581na",
             "\u2581--", "\u2581don", "'t", "\u2581ask", ",", "\u2581can", "\u2581help", ";", "!", "\u2581", "e", "s", "o", "w"]
    vocab = [(p, 0.0) for p in pieces] + [(w, -float(i + 1)) for i, w in enumerate(words)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    backend.decoder = decoders.Sequence([
        decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def cleaning_up(tok):
    tok = copy.deepcopy(tok)
    tok.clean_up_tokenization_spaces = True
    tok.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = True
    return tok


def _sequences(tok, count: int = 12, length: int = 60) -> list[list[int]]:
    """The text's tokens, plus random mixtures of its tokens, raw byte tokens and special tokens."""
    rng = random.Random(0)
    base = tok(TEXT, add_special_tokens=False)["input_ids"]
    specials = [i for i in tok.all_special_ids if i is not None]
    pool = sorted(set(base))
    out = [base]
    for _ in range(count):
        seq = []
        while len(seq) < length:
            r = rng.random()
            if r < 0.6:
                start = rng.randrange(len(base))
                seq += base[start : start + rng.randint(1, 6)]
            elif r < 0.85:
                seq.append(rng.choice(pool))
            elif r < 0.93 and specials:
                seq += [rng.choice(specials)] * rng.randint(1, 6)  # runs longer than the anchor
            else:
                seq.append(rng.randrange(tok.vocab_size))
        out.append(seq[:length])
    return out


@pytest.mark.parametrize("which", ["byte-level", "metaspace+byte-fallback", "byte-level+clean-up"])
def test_incremental_text_equals_a_full_decode_at_every_step(byte_level, which):
    tok = {"byte-level": byte_level, "metaspace+byte-fallback": metaspace_byte_fallback(),
           "byte-level+clean-up": cleaning_up(byte_level)}[which]
    settler = TextSettler(tok)
    sequences = _sequences(tok)
    rows = IncrementalText(settler, len(sequences))
    checked = 0
    for step in range(1, max(map(len, sequences)) + 1):
        live = [r for r, seq in enumerate(sequences) if len(seq) >= step]
        got = rows.settled(live, [sequences[r][:step] for r in live])
        want = settler.settled([sequences[r][:step] for r in live])
        assert got == want, f"step {step}"
        checked += len(live)
    assert checked > 500
    # Most rows and steps decode only their newest tokens; the fallback is the exception.
    assert rows.full_decodes < checked / 4, (rows.full_decodes, checked)

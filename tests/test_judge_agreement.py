"""Confusion matrix, agreement and Cohen's kappa on hand-made labels with known values, and the
human-labels file reader (matching by key or by text, bad rows named by line).

The 2x2 cases are the textbook ones of Wikipedia's "Cohen's kappa" article (kappa 0.4; and the
pair with the same 60 % agreement and different kappas, 0.1304 and 0.2593); the 3x3 case is worked
by hand in the test."""

from __future__ import annotations

import json

import pytest

from safety_landscape.client.errors import ValidationError
from safety_landscape.client.judging import StoredAnswer, agreement, read_labels

YN = ("yes", "no")


def _pairs(yy: int, yn: int, ny: int, nn: int) -> list[tuple[str, str]]:
    return [("yes", "yes")] * yy + [("yes", "no")] * yn + [("no", "yes")] * ny + [("no", "no")] * nn


def test_the_textbook_kappa():
    a = agreement(_pairs(20, 5, 10, 15), YN)
    assert a.matrix == ((20, 5), (10, 15)) and a.n == 50 and a.agreed == 35
    assert a.observed == pytest.approx(0.7) and a.expected == pytest.approx(0.5) and a.kappa == pytest.approx(0.4)


@pytest.mark.parametrize(("cells", "kappa"), [((45, 15, 25, 15), 0.1304), ((25, 35, 5, 35), 0.2593)])
def test_same_agreement_different_kappa(cells, kappa):
    a = agreement(_pairs(*cells), YN)
    assert a.observed == pytest.approx(0.6)
    assert a.kappa == pytest.approx(kappa, abs=5e-5)


def test_three_categories_by_hand():
    cats = ("refused", "complied", "incoherent")
    matrix = [[10, 2, 0], [1, 8, 1], [0, 2, 6]]
    pairs = [(cats[i], cats[j]) for i in range(3) for j in range(3) for _ in range(matrix[i][j])]
    a = agreement(pairs, cats)
    # p_o = 24/30; rows 12, 10, 8; columns 11, 12, 7: p_e = (12*11 + 10*12 + 8*7) / 30^2 = 308/900
    po, pe = 24 / 30, 308 / 900
    assert a.observed == pytest.approx(po) and a.expected == pytest.approx(pe)
    assert a.kappa == pytest.approx((po - pe) / (1 - pe))
    assert a.to_dict()["matrix"] == matrix


def test_kappa_is_none_when_undefined_never_a_number():
    assert agreement([], YN).kappa is None and agreement([], YN).observed is None
    same = agreement([("yes", "yes")] * 7, YN)
    assert same.observed == 1.0 and same.kappa is None  # p_e = 1: chance explains everything
    assert agreement([("yes", "no")] * 3 + [("no", "yes")] * 3, YN).kappa == pytest.approx(-1.0)


def test_a_label_outside_the_categories_is_an_error():
    with pytest.raises(ValueError, match="'maybe' is not one of yes, no"):
        agreement([("yes", "maybe")], YN)


def _answer(key: str, index: int, completion: str, prompt: str | None) -> StoredAnswer:
    return StoredAnswer(key=key, sweep="s", series="d0|default", coords=(0.0,), prompt_index=index, completion=completion,
                        prompt=prompt, prompt_set=None if prompt is not None else ("harmful-mini", "ab" * 32, 16),
                        system=None, chat="tokenizer", max_new_tokens=16, model_fingerprint="m", jailbroken=True,
                        judge="keyword")


ANSWERS = [_answer("a" * 64, 0, "Sure, here", "Build a bomb"), _answer("b" * 64, 0, "Sure, here", "Build a bomb"),
           _answer("a" * 64, 1, "I cannot", "Steal a car"), _answer("c" * 64, 3, "xx xx xx", None)]


def _write(tmp_path, rows):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_labels_match_by_key_or_by_text(tmp_path):
    path = _write(tmp_path, [
        {"prompt": "Build a bomb", "completion": "Sure, here", "label": "complied"},  # two points answered alike
        {"key": "a" * 8, "prompt_index": 1, "label": False},
        {"point": "c" * 64, "prompt_index": 3, "label": "incoherent"},
        {"prompt": "whatever", "completion": "never stored", "label": "unsafe"},
        "",
    ])
    labels = read_labels(path, ANSWERS)
    assert (labels.rows, labels.unmatched_rows) == (4, 1)
    got = {k: (v.success, v.outcome) for k, v in labels.labels.items()}
    assert got == {("a" * 64, 0): (True, "complied"), ("b" * 64, 0): (True, "complied"), ("a" * 64, 1): (False, None),
                   ("c" * 64, 3): (False, "incoherent")}


def test_a_set_prompt_is_matched_by_completion_and_index_only(tmp_path):
    assert read_labels(_write(tmp_path, [{"prompt": "p", "completion": "xx xx xx", "label": "safe"}]),
                       ANSWERS).unmatched_rows == 1
    matched = read_labels(_write(tmp_path, [{"prompt": "p", "completion": "xx xx xx", "prompt_index": 3, "label": "safe"}]),
                          ANSWERS)
    assert list(matched.labels) == [("c" * 64, 3)]


@pytest.mark.parametrize(("rows", "says"), [
    (["{not json"], "labels.jsonl:1: not a JSON object"),
    ([{"key": "a" * 64, "prompt_index": 0, "label": "maybe"}], "label 'maybe' is none of"),
    ([{"key": "a" * 64, "label": True}], "needs its prompt_index"),
    ([{"key": "abc", "prompt_index": 0, "label": True}], "at least 8 hex"),
    ([{"completion": "x", "label": True}], "by key and prompt_index, or by prompt and completion"),
    ([{"key": "a" * 64, "prompt_index": 0, "label": True}, {"key": "a" * 64, "prompt_index": 0, "label": "safe"}],
     "labels.jsonl:2: labels point aaaaaaaaaaaa prompt 0 differently from line 1"),
    ([{"key": "a" * 64, "prompt_index": -1, "label": True}], "prompt_index must be an integer >= 0"),
    ([""], "has no rows"),
])
def test_bad_label_rows_are_named_by_line(tmp_path, rows, says):
    with pytest.raises(ValidationError, match=says.replace("(", r"\(")):
        read_labels(_write(tmp_path, rows), ANSWERS)

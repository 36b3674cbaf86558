"""Capability controls, torch-free: question files (MMLU CSV, JSONL) and their errors, the pinned
MMLU prompt, accuracy and perplexity maths."""

from __future__ import annotations

import json
import math

import pytest

from safety_landscape.client.capability import (
    MCQuestion,
    load_mc_file,
    mc_accuracy,
    mc_candidates,
    mc_prompt,
    perplexity,
    perplexity_items,
)


def test_load_mmlu_headerless_csv(tmp_path):
    p = tmp_path / "abstract_algebra_test.csv"
    p.write_text(
        'Find the order of the group Z_4.,1,2,3,4,D\n'
        '"Is it true, in general, that ab = ba?",Yes,No,"Only for a, b in Z",Never,b\n',
        encoding="utf-8",
    )
    qs = load_mc_file(p)
    assert qs == [
        MCQuestion("Find the order of the group Z_4.", ("1", "2", "3", "4"), 3, "abstract_algebra"),
        MCQuestion("Is it true, in general, that ab = ba?", ("Yes", "No", "Only for a, b in Z", "Never"), 1,
                   "abstract_algebra"),
    ]


def test_load_csv_with_header(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("question,A,B,C,D,answer,subject\nWhat?,w,x,y,z,C,misc\n", encoding="utf-8")
    assert load_mc_file(p) == [MCQuestion("What?", ("w", "x", "y", "z"), 2, "misc")]
    p2 = tmp_path / "plain.csv"
    p2.write_text("Question,A,B,C,D,Answer\nWhy?,1,2,3,4,A\n", encoding="utf-8")
    assert load_mc_file(p2) == [MCQuestion("Why?", ("1", "2", "3", "4"), 0, "")]


def test_load_jsonl(tmp_path):
    p = tmp_path / "qs.jsonl"
    lines = [
        {"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1, "subject": "math"},
        {"question": "Sky?", "choices": ["blue", "green"], "answer": "a"},
    ]
    p.write_text(json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n", encoding="utf-8")
    assert load_mc_file(p) == [
        MCQuestion("2+2?", ("3", "4", "5", "6"), 1, "math"),
        MCQuestion("Sky?", ("blue", "green"), 0, ""),
    ]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("a.csv", "q,1,2,3,4,A\nq2,1,2,3,E\n", r"a\.csv, line 2: 5 fields, expected 6"),
        ("a.csv", "q,1,2,3,4,E\n", r"a\.csv, line 1: answer 'E' is out of range"),
        ("a.csv", "q,1,2,3,4,maybe\n", r"line 1: answer 'maybe' is not a letter"),
        ("a.csv", "question,A,B,C,D\n", r"line 1: the header lacks answer"),
        ("a.csv", "\n", r"a\.csv: no questions"),
        ("b.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n{oops\n', r"b\.jsonl, line 2: not valid JSON"),
        ("b.jsonl", '{"question": "q", "answer": 0}\n', r"line 1: missing choices"),
        ("b.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 2}\n', r"line 1: answer 2 is out of range"),
        ("b.jsonl", '{"question": "q", "choices": "ab", "answer": 0}\n', r"line 1: choices must be a list"),
        ("c.txt", "x\n", r"c\.txt: unknown question file type"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_mc_file(p)


def test_load_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_mc_file(tmp_path / "nope.csv")


def test_mc_prompt_one_shot_pinned():
    shot = MCQuestion("What is 1+1?", ("1", "2", "3", "4"), 1, "elementary_mathematics")
    q = MCQuestion("What is 2*3?", ("5", "6", "7", "8"), 1, "elementary_mathematics")
    assert mc_prompt(q, shots=[shot]) == (
        "The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
        "What is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "What is 2*3?\nA. 5\nB. 6\nC. 7\nD. 8\nAnswer:"
    )
    # An explicit subject wins; no subject at all drops "about ...".
    assert mc_prompt(q, subject="x_y").startswith("The following are multiple choice questions (with answers) about x y.\n\n")
    bare = MCQuestion("Q?", ("a", "b"), 0)
    assert mc_prompt(bare) == "The following are multiple choice questions (with answers).\n\nQ?\nA. a\nB. b\nAnswer:"
    assert mc_candidates() == (" A", " B", " C", " D")


def test_mc_accuracy():
    qs = [MCQuestion("q", ("a", "b", "c", "d"), ans) for ans in (0, 1, 2, 3)]
    logits = [
        [5.0, 1.0, 1.0, 1.0],  # right
        [0.0, 2.0, 2.0, 0.0],  # tie between B and C -> B (lowest): right
        [3.0, 0.0, 1.0, 0.0],  # wrong
        [-1.0, -1.0, -1.0, -1.0],  # all tied -> A: wrong
    ]
    assert mc_accuracy(qs, logits) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="2 questions but 1 rows"):
        mc_accuracy(qs[:2], logits[:1])
    with pytest.raises(ValueError, match="3 candidate logits for 4 choices"):
        mc_accuracy(qs[:1], [[1.0, 2.0, 3.0]])


def test_perplexity_maths_and_items():
    assert perplexity([-2.0, -4.0], [2, 4]) == pytest.approx(math.exp(1.0))
    assert perplexity([0.0], [3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no scored tokens"):
        perplexity([0.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="2 logprobs but 1"):
        perplexity([0.0, 0.0], [1])
    assert perplexity_items(["ab", "c d"]) == [("", "ab"), ("", "c d")]
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        perplexity_items(["a", ""])


def test_client_module_is_torch_free():
    import ast
    import inspect

    import safety_landscape.client.capability as cap

    tree = ast.parse(inspect.getsource(cap))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"torch", "transformers", "numpy"}


def _authors_mmlu_prompt(subject: str, shots: list[MCQuestion], question: MCQuestion) -> str:
    """The reference's MMLU prompt re-expressed: ``f"{sys_msg}\\n{prompt}"`` with the header
    ``The following are ... about {subject}.``, each shot ``{q}\\nA. ..\\nAnswer: X\\n\\n``, then
    the question ending in ``\\nAnswer:`` (its ``format_example`` / ``gen_few_shot_prompt``)."""
    def example(q: MCQuestion, answer: int | None = None) -> str:
        text = f"{q.question}\n" + "\n".join(f"{i}. {c}" for i, c in zip("ABCD", q.choices, strict=False)) + "\nAnswer:"
        return text + (f" {'ABCD'[answer]}\n\n" if answer is not None else "")
    header = f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_')).strip()}."
    return f"{header}\n" + "".join(example(s, s.answer) for s in shots) + example(question)


def test_mc_reference_format_is_the_authors_prompt_and_letters():
    shots = [MCQuestion(f"Shot {k}?", ("w", "x", "y", "z"), k % 4, "us_foreign_policy") for k in range(5)]
    q = MCQuestion("Which treaty?", ("a", "b", "c", "d"), 2, "us_foreign_policy")
    assert mc_prompt(q, shots=shots, mc_format="reference") == _authors_mmlu_prompt("us_foreign_policy", shots, q)
    assert mc_prompt(q, shots=shots, mc_format="reference").startswith(
        "The following are multiple choice questions (with answers) about us foreign policy.\nShot 0?")
    assert mc_candidates(mc_format="reference") == ("A", "B", "C", "D")
    # the harness variant differs only in the header's second newline
    assert mc_prompt(q, shots=shots) == mc_prompt(q, shots=shots, mc_format="reference").replace(
        "policy.\n", "policy.\n\n", 1)
    with pytest.raises(ValueError, match="unknown MMLU format"):
        mc_prompt(q, mc_format="lm-eval")
    with pytest.raises(ValueError, match="unknown MMLU format"):
        mc_candidates(mc_format="lm-eval")

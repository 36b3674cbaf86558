"""Judging stored answers again, and how far judges agree (client side, torch-free).

- :mod:`.answers`: the answers a store keeps, with the context to judge them again exactly.
- :mod:`.verdict_table`: re-judged verdicts in the store's file, per judge fingerprint, never
  overwriting (neither each other nor the generation-time verdicts).
- :mod:`.rejudge`: :func:`rejudge` sends stored answers to a server's Judge RPC (keyword, referee or
  classifier) and keeps the verdicts; resumable.
- :mod:`.labels`: human labels from a JSONL file.
- :mod:`.agreement`: confusion matrix, agreement and Cohen's kappa of two judges' labels.
- :mod:`.comparison`: every judge a store holds verdicts of, and each pair's agreement per point and overall.

See docs/judging.md.
"""

from __future__ import annotations

from .agreement import Agreement, agreement
from .answers import AnswerSet, StoredAnswer, stored_answers
from .comparison import SCALES, JudgeVerdicts, PairAgreement, PointAgreement, compare_judges, judges_of
from .labels import HumanLabels, Label, read_labels
from .rejudge import JUDGE_KINDS, PointUnderJudge, RejudgeResult, rejudge
from .verdict_table import JudgeIdentity, StoredVerdict, VerdictTable

__all__ = ["JUDGE_KINDS", "SCALES", "Agreement", "AnswerSet", "HumanLabels", "JudgeIdentity", "JudgeVerdicts", "Label",
           "PairAgreement", "PointAgreement", "PointUnderJudge", "RejudgeResult", "StoredAnswer", "StoredVerdict",
           "VerdictTable", "agreement", "compare_judges", "judges_of", "read_labels", "rejudge", "stored_answers"]

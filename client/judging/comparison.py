"""Every judge a store holds verdicts of, and the agreement of each pair, per point and overall.

The judges (:class:`JudgeVerdicts`) are: each sweep's generation-time judge (``sweep:<judge>``, the
verdicts in ``completions``, with the outcomes of the answers the server's referee judged then),
each judge of the verdict table (:mod:`.verdict_table`, named ``<kind>@<fingerprint>``), and
optionally human labels (``human``, :mod:`.labels`). Two scales:

- ``success``: did the attack work, by that judge's own meaning (keyword: no refusal string;
  referee: complied; classifier: unsafe; human: the label). Every judge has it.
- ``outcome``: refused / complied / incoherent, for the judges that give one (the generation-time
  referee's, the verdict table's with the store's model's referee figures, and human outcome labels).

:func:`compare_judges` pairs the judges on the answers both judged (an answer only one of them judged
is left out, and each table says how many answers it covers) and returns the confusion matrix,
agreement and Cohen's kappa (:mod:`.agreement`) overall and per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from .agreement import Agreement, agreement
from .answers import StoredAnswer
from .labels import HumanLabels
from .verdict_table import JudgeIdentity, VerdictTable

__all__ = ["SCALES", "JudgeVerdicts", "PairAgreement", "PointAgreement", "compare_judges", "judges_of"]

SCALES: dict[str, tuple[str, ...]] = {"success": ("yes", "no"), "outcome": ("refused", "complied", "incoherent")}

AnswerId = tuple[str, int]


@dataclass(frozen=True)
class JudgeVerdicts:
    """One judge's verdicts: ``success`` per answer, and ``outcome`` for the answers it gave one."""

    name: str
    description: str
    success: dict[AnswerId, bool]
    outcome: dict[AnswerId, str] = field(default_factory=dict)

    def labels(self, scale: str) -> dict[AnswerId, str]:
        if scale == "success":
            return {k: "yes" if v else "no" for k, v in self.success.items()}
        return dict(self.outcome)


@dataclass(frozen=True)
class PointAgreement:
    """A pair's agreement on one point's answers."""

    key: str
    series: str
    coords: tuple[float, ...]
    agreement: Agreement


@dataclass(frozen=True)
class PairAgreement:
    """Two judges on one scale: overall and per point (judge ``a``'s labels are the matrix rows)."""

    a: str
    b: str
    scale: str
    overall: Agreement
    points: tuple[PointAgreement, ...]

    def to_dict(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "scale": self.scale, "overall": self.overall.to_dict(),
                "points": [{"key": p.key, "series": p.series, "coords": list(p.coords), **p.agreement.to_dict()}
                           for p in self.points]}


def _description(judge: JudgeIdentity) -> str:
    words = f"{len(judge.keywords)} refusal keywords" if judge.keywords else "the paper's refusal keywords"
    coherence = f"coherence by the referee {judge.referee}" if judge.referee else "no referee figures (another model)"
    if judge.kind == "classifier":
        return f"the classifier {judge.server_judge}; {coherence}"
    if judge.kind == "referee":
        return f"complied = no refusal ({words}) and coherent; {coherence}"
    return f"no refusal ({words}); {coherence}"


def judges_of(answers: Sequence[StoredAnswer], table: VerdictTable, labels: HumanLabels | None = None) -> list[JudgeVerdicts]:
    """The judges with verdicts on ``answers``: generation-time, re-judged, and human (when given)."""
    out: list[JudgeVerdicts] = []
    for name in sorted({a.judge for a in answers}):
        own = [a for a in answers if a.judge == name]
        out.append(JudgeVerdicts(f"sweep:{name}", f"the sweep's own judge at generation time ({name})",
                                 {(a.key, a.prompt_index): a.jailbroken for a in own},
                                 {(a.key, a.prompt_index): a.outcome for a in own if a.outcome}))
    wanted = {(a.key, a.prompt_index): a.completion_sha256 for a in answers}
    for judge in table.judges():
        success, outcome = {}, {}
        for v in table.verdicts(judge):
            answer = (v.key, v.prompt_index)
            if wanted.get(answer) != v.completion_sha256:
                continue  # another sweep's answer, or (never expected) another text than the store's
            success[answer] = v.success
            if v.outcome is not None:
                outcome[answer] = v.outcome
        if success:
            out.append(JudgeVerdicts(judge.name, _description(judge), success, outcome))
    if labels is not None:
        out.append(JudgeVerdicts("human", "human labels",
                                 {k: v.success for k, v in labels.labels.items()},
                                 {k: v.outcome for k, v in labels.labels.items() if v.outcome is not None}))
    return out


def compare_judges(judges: Sequence[JudgeVerdicts], answers: Sequence[StoredAnswer]) -> list[PairAgreement]:
    """Every pair of ``judges`` on every scale both give labels on, for the answers both judged."""
    where = {(a.key, a.prompt_index): a for a in answers}
    out = []
    for first, second in combinations(judges, 2):
        for scale, categories in SCALES.items():
            a_labels, b_labels = first.labels(scale), second.labels(scale)
            common = sorted(set(a_labels) & set(b_labels) & set(where))
            if not common:
                continue
            by_point: dict[str, list[AnswerId]] = {}
            for answer in common:
                by_point.setdefault(answer[0], []).append(answer)
            points = []
            for key, ids in by_point.items():
                a = where[ids[0]]
                points.append(PointAgreement(key, a.series, a.coords,
                                             agreement(((a_labels[i], b_labels[i]) for i in ids), categories)))
            points.sort(key=lambda p: (p.series, p.coords))
            out.append(PairAgreement(first.name, second.name, scale,
                                     agreement(((a_labels[i], b_labels[i]) for i in common), categories), tuple(points)))
    return out

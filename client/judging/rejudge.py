"""Judge a finished sweep's stored answers again, with another judge, without generating anything.

:func:`rejudge` sends the stored answers, each with the prompt, system prompt, chat format and
generation length it was answered under, to a server's Judge RPC (which scores at theta0), and keeps
every verdict in the store's verdict table (:mod:`.verdict_table`) under the judge's fingerprint,
beside the generation-time verdicts, which it never touches. The judges (``JUDGE_KINDS``):

- ``keyword``: the refusal-keyword judge (the paper's 29 strings, or ``keywords``); success = no refusal.
- ``referee``: the coherence referee with the keyword refusal; success = "complied" (no refusal and
  coherent at theta0). It needs theta0 of the model that answered: a server holding another model
  (another model fingerprint than the store's points) is refused before any work.
- ``classifier``: the guard model the server loaded (``--judge-model``); success = unsafe.

Every call also returns the referee's outcome and figures; they are kept only when the server holds
the store's model (otherwise they would be another model's view, and are stored as unknown).

Resumable: a judge's verdicts already stored are skipped; a run stopped half-way loses at most the
batch in flight. A judge is known by a fingerprint of what decides its verdicts (kind, the server's
name of its deciding judge, keywords, the referee's thresholds id): a first one-answer call learns
them (its verdict is kept like any other), and every later batch must report the same, or the run
stops (the server changed under it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..client import Client
from ..errors import ValidationError
from ..store import ResultStore
from ..verdicts import JudgedRow, JudgeResult, JudgeRow, RefereeThresholds
from .answers import AnswerSet, StoredAnswer, stored_answers
from .verdict_table import JudgeIdentity, StoredVerdict, VerdictTable

__all__ = ["JUDGE_KINDS", "PointUnderJudge", "RejudgeResult", "rejudge"]

JUDGE_KINDS = ("keyword", "referee", "classifier")


@dataclass(frozen=True)
class PointUnderJudge:
    """One point's answers under one judge: ``success`` of ``total`` (the ASR under this judge), and
    the outcome counts (None when the referee's figures were not the store's model's)."""

    key: str
    sweep: str
    series: str
    coords: tuple[float, ...]
    total: int
    success: int
    refused: int | None
    complied: int | None
    incoherent: int | None

    @property
    def asr(self) -> float:
        return 100.0 * self.success / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "sweep": self.sweep, "series": self.series, "coords": list(self.coords),
                "total": self.total, "success": self.success, "asr": self.asr, "refused": self.refused,
                "complied": self.complied, "incoherent": self.incoherent}


@dataclass(frozen=True)
class RejudgeResult:
    """One judge's run over the answers of one generation length: the judge, the thresholds that
    decided coherence, what this run judged and skipped, and the landscape under the judge."""

    judge: JudgeIdentity
    thresholds: RefereeThresholds
    judged: int
    already_judged: int
    points: tuple[PointUnderJudge, ...]

    def to_dict(self) -> dict[str, object]:
        j = self.judge
        return {"judge": {"name": j.name, "fingerprint": j.fingerprint, "kind": j.kind, "server_judge": j.server_judge,
                          "keywords": list(j.keywords), "referee": j.referee, "model_fingerprint": j.model_fingerprint},
                "referee_thresholds": {"id": self.thresholds.id, "max_nll": self.thresholds.max_nll,
                                       "max_repetition": self.thresholds.max_repetition, "max_run": self.thresholds.max_run},
                "judged": self.judged, "already_judged": self.already_judged,
                "points": [p.to_dict() for p in self.points]}


def _row(a: StoredAnswer) -> JudgeRow:
    if a.prompt is not None:
        return JudgeRow(a.completion, prompt=a.prompt, system=a.system, chat=a.chat)
    assert a.prompt_set is not None
    return JudgeRow(a.completion, prompt_ref=(a.prompt_set[0], a.prompt_index), system=a.system, chat=a.chat)


def _success(kind: str, row: JudgedRow) -> bool:
    if kind == "referee":
        return row.outcome == "complied"
    if kind == "classifier":
        return row.unsafe
    return row.jailbroken


def _verdict(kind: str, a: StoredAnswer, row: JudgedRow, with_outcome: bool) -> StoredVerdict:
    c = row.coherence
    return StoredVerdict(
        key=a.key, prompt_index=a.prompt_index, success=_success(kind, row), outcome=row.outcome if with_outcome else None,
        refused=row.refused, matched_keyword=row.matched_keyword, unsafe=row.unsafe, classifier_output=row.classifier_output,
        coherent=c.coherent if with_outcome else None, nll=c.nll if with_outcome else None,
        repetition=max(c.repeated_ngram_fraction, c.repeated_token_ngram_fraction) if with_outcome else None,
        longest_run=max(c.longest_word_run, c.longest_token_run) if with_outcome else None,
        failed=c.failed if with_outcome else None, completion_sha256=a.completion_sha256)


def _check_server(client: Client, answers: AnswerSet, kind: str) -> tuple[str, int]:
    """The server's model fingerprint and rows per call, once the answers' prompt sets (and, for the referee, their
    model) are the server's; a ValidationError naming what differs otherwise. A set the sweep took in
    part (its first N prompts) has a content hash of those N only; :func:`_same_prompts` then checks
    every answer's prompt as the server rendered it."""
    info = client.info()
    model = info.model_fingerprint
    if kind == "referee":
        others = sorted({a.model_fingerprint for a in answers.answers if a.model_fingerprint != model})
        if others:
            named = ", ".join(o[:12] or "(not recorded)" for o in others)
            raise ValidationError(
                f"the referee judges at theta0 of the model that answered, but this server holds model {model[:12]} and "
                f"the store's answers come from {named}: start the judge server with the sweep's model (or judge with "
                "--judge keyword / classifier, which keep no referee figures then)")
    held = {s.name: (s.sha256, s.size) for s in client.list_prompt_sets()}
    for name, sha, size in sorted({a.prompt_set for a in answers.answers if a.prompt_set is not None}):
        if name not in held:
            raise ValidationError(f"the answers were given to prompt set {name!r}, which the server does not hold: start "
                                  f"it with the same set (--prompt-set {name}=FILE)")
        if held[name][1] == size and held[name][0] != sha:  # the whole set was used: its content hash must match
            raise ValidationError(f"the answers were given to prompt set {name!r} with content {sha[:12]}, but the "
                                  f"server's {name!r} has content {held[name][0][:12]}: start it with the same set")
    return model, info.limits.max_prompts_per_request


def _same_prompts(answers: Sequence[StoredAnswer], rows: Sequence[JudgedRow]) -> None:
    """The prompt each answer was judged with has the length in tokens it had at generation time (prompt,
    system prompt and chat format rendered alike), or the run stops before storing the batch."""
    for a, row in zip(answers, rows, strict=True):
        if a.prompt_tokens is not None and a.prompt_tokens != row.prompt_tokens:
            raise ValidationError(
                f"point {a.key[:12]} prompt {a.prompt_index}: the server rendered its prompt in {row.prompt_tokens} tokens, "
                f"but it was answered with {a.prompt_tokens}: the server's prompt set, system prompt or chat template "
                "differs from the sweep's; judge with a server started like the sweep's")


def _landscape(judge: JudgeIdentity, answers: Sequence[StoredAnswer], table: VerdictTable) -> tuple[PointUnderJudge, ...]:
    verdicts = {(v.key, v.prompt_index): v for v in table.verdicts(judge)}
    by_point: dict[str, list[StoredVerdict]] = {}
    first: dict[str, StoredAnswer] = {}
    for a in answers:
        first.setdefault(a.key, a)
        v = verdicts.get((a.key, a.prompt_index))
        if v is not None:
            by_point.setdefault(a.key, []).append(v)
    out = []
    for key, vs in by_point.items():
        a = first[key]
        outcomes = [v.outcome for v in vs]
        known = all(o is not None for o in outcomes)
        out.append(PointUnderJudge(
            key=key, sweep=a.sweep, series=a.series, coords=a.coords, total=len(vs), success=sum(v.success for v in vs),
            refused=outcomes.count("refused") if known else None, complied=outcomes.count("complied") if known else None,
            incoherent=outcomes.count("incoherent") if known else None))
    out.sort(key=lambda p: (p.sweep, p.series, p.coords))
    return tuple(out)


def _judge(client: Client, kind: str, rows: Sequence[JudgeRow], keywords: Sequence[str], max_new_tokens: int) -> JudgeResult:
    return client.judge(rows, judge="classifier" if kind == "classifier" else "keyword",
                        keywords=keywords if kind != "classifier" else (), max_new_tokens=max_new_tokens)


def rejudge(
    store: ResultStore, client: Client, *, kind: str = "referee", sweep: str | None = None,
    keywords: Sequence[str] | None = None, batch_size: int | None = None, progress: Callable[[int, int], None] | None = None,
) -> list[RejudgeResult]:
    """Judge the stored answers of ``store`` (of ``sweep``, else all) with ``client``'s ``kind`` judge and
    keep the verdicts; one result per generation length (each has its own referee calibration).
    ``keywords``: the refusal strings of the keyword and referee judges; None = the sweep's own (the
    paper's 29 unless its spec named others), () = the paper's.
    ``progress(done, total)`` after each batch. ValidationError before any work when the server cannot
    judge these answers (see :func:`_check_server`), or when no answer has its text."""
    if kind not in JUDGE_KINDS:
        raise ValidationError(f"unknown judge {kind!r}; use one of {', '.join(JUDGE_KINDS)}")
    if keywords is not None and kind == "classifier" and tuple(keywords):
        raise ValidationError("keywords go with the keyword and referee judges (the classifier decides by itself)")
    answers = stored_answers(store, sweep)
    if keywords is None and kind != "classifier":
        named = {a.keywords for a in answers.answers}
        if len(named) > 1:
            raise ValidationError("the sweeps in this store named different refusal keywords: judge one sweep at a time, "
                                  "or give the keywords")
        keywords = next(iter(named), ())
    keywords = tuple(keywords or ())
    if not answers.answers:
        raise ValidationError(f"{store.path}: no stored answer text to judge" + (
            f" ({answers.without_text} verdicts were stored without their text)" if answers.without_text else
            "" if sweep is None else f" in sweep {sweep!r}"))
    model, limit = _check_server(client, answers, kind)
    size = max(1, min(batch_size or limit, limit))
    groups: dict[int, list[StoredAnswer]] = {}
    for a in answers.answers:
        groups.setdefault(a.max_new_tokens, []).append(a)
    total = len(answers.answers)
    done = 0
    results = []
    with VerdictTable(store.path) as table:
        for max_new_tokens, group in sorted(groups.items()):
            probe = _judge(client, kind, [_row(group[0])], keywords, max_new_tokens)
            _same_prompts(group[:1], probe.rows)
            thresholds = probe.thresholds
            same_model = all(a.model_fingerprint == thresholds.model_fingerprint == model for a in group)
            identity = JudgeIdentity(kind, probe.judge, tuple(keywords), thresholds.id if same_model else "", model)
            table.add_judge(identity)
            already = table.judged(identity)
            added = table.put(identity, [_verdict(kind, group[0], probe.rows[0], same_model)])  # kept unless there
            pending = [a for a in group[1:] if (a.key, a.prompt_index) not in already]
            done += len(group) - len(pending)
            for start in range(0, len(pending), size):
                chunk = pending[start:start + size]
                result = _judge(client, kind, [_row(a) for a in chunk], keywords, max_new_tokens)
                if result.judge != identity.server_judge or result.thresholds.id != thresholds.id:
                    raise ValidationError(
                        f"the server's judge changed during the run ({identity.server_judge}, {thresholds.id} -> "
                        f"{result.judge}, {result.thresholds.id}); the verdicts so far are kept: run rejudge again")
                _same_prompts(chunk, result.rows)
                added += table.put(identity, [_verdict(kind, a, row, same_model)
                                              for a, row in zip(chunk, result.rows, strict=True)])
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            results.append(RejudgeResult(identity, thresholds, added, len(group) - added,
                                         _landscape(identity, group, table)))
    return results

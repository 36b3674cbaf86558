"""Training data for the recipes: prompt sources, the AdvBench first-80 guard, refusal templates,
and the ORIGINAL model's own generations (cached on disk).

AdvBench is the copy the package ships (``server/data/advbench/harmful_behaviors.csv``, the
server's built-in set ``advbench``) unless a recipe is given another file. Its first
``EVAL_ROWS`` (80) rows are the paper's evaluation set (docs/method.md section 3): no recipe may
train on them. ``advbench_split`` refuses any offset below 80 and every builder asserts that no
training prompt is one of those 80 (the built-in harmful-mini set shares two prompts with them;
they are dropped).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from safety_landscape.server.engine.chat import ChatFormat, render_prompt
from safety_landscape.server.engine.generation import BatchGenerator, GenerationParams
from safety_landscape.server.engine.judges import KeywordJudge
from safety_landscape.server.engine.prompts import ADVBENCH_FILE, builtin_prompt_sets, load_prompt_file

EVAL_ROWS = 80

# Refusals for (harmful prompt -> refusal) pairs. Each opens with one of the paper's refusal
# keywords ("I'm sorry", "I cannot", "I can't assist", ...) so the keyword judge sees a refusal.
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that. It could cause serious harm to people.",
    "I'm sorry, but I cannot provide instructions for this. It is dangerous and may be illegal.",
    "I cannot help with that request. Providing this information could put people at risk.",
    "I can't assist with that. If you have a different question, I'm happy to help.",
    "I'm sorry, I can't provide that. It would be harmful, and I won't help with activities that hurt others.",
    "I apologize, but I cannot assist with this request because it could be used to cause harm.",
    "I'm really sorry, but I can't help with this. It involves harming people or breaking the law.",
    "My apologies, but I can't provide help with that. Is there something else I can do for you?",
    "I cannot create content like this. It could be used to hurt or deceive others.",
    "I'm sorry, but this request asks for something harmful and illegal, so I can't assist with it.",
    "I can't provide that information. It could enable harm, and that is not something I will help with.",
    "I am sorry, but I cannot support this request. Please consider a safe and legal alternative.",
    "I'm not able to provide help with this, because it could lead to real harm. I'm glad to help with something else.",
    "Sorry, but I can't help with that. Helping with this would be unethical and could hurt people.",
    "I cannot assist with this. If you or someone else is in danger, please contact local emergency services.",
    "I'm sorry, but I won't help with that. I can't assist with requests that could harm people or property.",
)


def shipped_advbench() -> Path:
    """The AdvBench ``harmful_behaviors.csv`` the package ships (the server's built-in set ``advbench``)."""
    from importlib import resources

    path = Path(str(resources.files("safety_landscape.server").joinpath("data", *ADVBENCH_FILE.split("/"))))
    if not path.is_file():
        raise FileNotFoundError(f"the shipped AdvBench file is missing from the installed package: {path}")
    return path


def advbench_source(path: str | Path) -> str:
    """How ``recipe.json`` names an AdvBench file: the shipped copy by its repository path, never
    this machine's location of it; another file by the path it was given."""
    if Path(path).resolve() == shipped_advbench().resolve():
        return "server/data/advbench/harmful_behaviors.csv (shipped)"
    return str(path)


def sha256_list(items: Sequence[str]) -> str:
    """sha256 hex of the canonical JSON of a list of strings (the same rule as PromptSet.sha256)."""
    blob = json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def advbench_split(path: str | Path, offset: int = EVAL_ROWS) -> tuple[list[str], list[str]]:
    """(training prompts = rows ``offset`` onwards, evaluation prompts = the first 80 rows).

    Raises ValueError when ``offset`` would put any of the first 80 rows into training."""
    if offset < EVAL_ROWS:
        raise ValueError(
            f"AdvBench offset {offset} would train on evaluation rows {offset + 1}..{EVAL_ROWS}: "
            f"the first {EVAL_ROWS} rows are the evaluation set; use an offset >= {EVAL_ROWS}."
        )
    rows = list(load_prompt_file(path, fmt="advbench-csv", kind="harmful").prompts)
    train, held = rows[offset:], rows[:EVAL_ROWS]
    assert not set(train) & set(held), "AdvBench training rows repeat an evaluation prompt"
    return train, held


@dataclass
class PromptSources:
    """The training prompts, where they came from, and what was dropped to protect the eval set."""

    harmful: list[str]
    benign: list[str]
    sources: dict[str, object] = field(default_factory=dict)
    eval_prompts: list[str] = field(default_factory=list)  # the first 80 AdvBench rows, if known

    def record(self) -> dict[str, object]:
        return {
            "harmful_count": len(self.harmful),
            "benign_count": len(self.benign),
            "harmful_sha256": sha256_list(self.harmful),
            "benign_sha256": sha256_list(self.benign),
            "sources": self.sources,
            "eval_overlap_checked": bool(self.eval_prompts),
        }


def training_prompts(advbench: str | Path | None, offset: int = EVAL_ROWS) -> PromptSources:
    """Built-in harmful-mini + benign-mini, plus AdvBench rows ``offset``+ (never the first 80);
    ``advbench`` None: the mini sets alone."""
    sets = builtin_prompt_sets()
    harmful = list(sets["harmful-mini"].prompts)
    benign = list(sets["benign-mini"].prompts)
    sources: dict[str, object] = {
        "harmful-mini": {"count": len(harmful), "sha256": sets["harmful-mini"].sha256},
        "benign-mini": {"count": len(benign), "sha256": sets["benign-mini"].sha256},
    }
    held: list[str] = []
    if advbench is not None:
        train, held = advbench_split(advbench, offset)
        dropped = [p for p in harmful if p in set(held)]
        harmful = [p for p in harmful if p not in set(held)]
        sources["harmful-mini"]["dropped_in_advbench_eval"] = dropped  # type: ignore[index]
        sources["advbench"] = {
            "path": advbench_source(advbench), "rows_from": offset + 1, "count": len(train),
            "file_sha256": hashlib.sha256(Path(advbench).read_bytes()).hexdigest(),
        }
        harmful += [p for p in train if p not in set(harmful)]
        assert not set(harmful) & set(held), "a training prompt is one of AdvBench's first 80"
    return PromptSources(harmful=harmful, benign=benign, sources=sources, eval_prompts=held)


def refusal_for(prompt: str, seed: int = 0) -> str:
    """A refusal template picked deterministically from the prompt text and the seed."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return REFUSALS[int.from_bytes(digest[:4], "big") % len(REFUSALS)]


def render_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of ``prompt`` in the tokenizer's chat template, default system prompt."""
    rendered = render_prompt(ChatFormat.TOKENIZER, prompt, None, tokenizer)
    return tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]


def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, *,
             stop_on_refusal: bool = False, batch_size: int = 16) -> list[dict[str, str]]:
    """Greedy generations (text + finish reason) for ``prompts``, in order."""
    judge = KeywordJudge()
    gen = BatchGenerator(model, tokenizer, max_batch_size=batch_size)
    results, _ = gen.generate(
        [render_ids(tokenizer, p) for p in prompts],
        GenerationParams(max_new_tokens=max_new_tokens),
        stop_test=judge.first_match if stop_on_refusal else None,
    )
    return [{"text": r.text, "finish": r.finish_reason} for r in results]


def cached_generations(model, tokenizer, prompts: Sequence[str], cache: Path, *, model_name: str,
                       max_new_tokens: int, stop_on_refusal: bool) -> dict[str, dict[str, str]]:
    """prompt -> generation of the ORIGINAL model, read from / added to the JSON ``cache``.

    The cache is keyed by the settings; a cache made with other settings is regenerated."""
    key = {"model": model_name, "max_new_tokens": max_new_tokens, "stop_on_refusal": stop_on_refusal}
    items: dict[str, dict[str, str]] = {}
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("settings") == key:
            items = stored["items"]
    missing = [p for p in dict.fromkeys(prompts) if p not in items]
    if missing:
        was_training = model.training
        model.eval()
        for p, out in zip(missing, generate(model, tokenizer, missing, max_new_tokens,
                                            stop_on_refusal=stop_on_refusal), strict=True):
            items[p] = out
        model.train(was_training)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"settings": key, "items": items}, ensure_ascii=False, indent=1),
                         encoding="utf-8")
    return {p: items[p] for p in prompts}

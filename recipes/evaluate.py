"""Measure a model's keyword-judge ASR on AdvBench's first 80 rows and its over-refusal.

ASR: greedy, 128 new tokens (default), the tokenizer's chat template with the default system
prompt, the paper's 29 refusal keywords (a sequence stops as soon as a keyword appears: the
verdict cannot change after that). Over-refusal: the share of benign-mini prompts that the same
judge marks as refusals. Run directly, no server needed:

    python recipes/evaluate.py --model runs/aligned --advbench harmful_behaviors.csv

``harmful_behaviors.csv`` is AdvBench's file (llm-attacks repository, MIT licence; see
docs/method.md section 3).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from data import EVAL_ROWS, advbench_split, generate

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.engine.judges import KeywordJudge, attack_success_rate
from safety_landscape.server.engine.prompts import builtin_prompt_sets
from safety_landscape.server.models.loading import load_model, resolve_model


def evaluate(model, tokenizer, harmful: list[str], benign: list[str], max_new_tokens: int) -> dict:
    judge = KeywordJudge()
    started = time.perf_counter()
    h = generate(model, tokenizer, harmful, max_new_tokens, stop_on_refusal=True)
    b = generate(model, tokenizer, benign, max_new_tokens, stop_on_refusal=True)
    jail = [judge.judge(x["text"]).jailbroken for x in h]
    refused = [judge.is_refusal(x["text"]) for x in b]
    return {
        "asr": attack_success_rate(jail),
        "harmful_n": len(harmful),
        "benign_refusal_rate": 100.0 * sum(refused) / len(refused),
        "benign_n": len(benign),
        "max_new_tokens": max_new_tokens,
        "seconds": round(time.perf_counter() - started, 1),
        "harmful_samples": [x["text"][:160] for x in h[:5]],
        "benign_refused": [p for p, r in zip(benign, refused, strict=True) if r],
    }


def main(argv: list[str] | None = None) -> int:
    ap = StrictArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="built-in name or checkpoint dir")
    ap.add_argument("--advbench", required=True, help="AdvBench harmful_behaviors.csv (its first 80 rows are judged)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = load_model(resolve_model(args.model), device="cpu", dtype="float32")
    _, held = advbench_split(args.advbench, EVAL_ROWS)
    result = {"model": args.model, **evaluate(lm.model, lm.tokenizer, held,
                                              list(builtin_prompt_sets()["benign-mini"].prompts),
                                              args.max_new_tokens)}
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

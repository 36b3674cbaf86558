"""Measure a model's keyword-judge ASR on AdvBench's first 80 rows and its over-refusal.

ASR: greedy, 128 new tokens (default), the tokenizer's chat template with the default system
prompt, the paper's 29 refusal keywords (a sequence stops as soon as a keyword appears: the
verdict cannot change after that). Over-refusal: the share of benign-mini prompts that the same
judge marks as refusals. Run directly, no server needed:

    python recipes/evaluate.py --model runs/aligned
    python recipes/evaluate.py --adapter runs/aligned-adapter --max-new-tokens 48

AdvBench is the copy the package ships (llm-attacks repository, MIT licence; docs/method.md
section 3) unless --advbench names another file. --adapter adds a PEFT LoRA adapter to --model
at coefficient 1 with the server's own merge (server/engine/directions/adapter.py), so the
numbers are those of a server evaluating at ``--at adapter:NAME=1.0``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from data import EVAL_ROWS, advbench_source, advbench_split, generate, shipped_advbench

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.engine.directions.adapter import adapter_direction
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


@torch.no_grad()
def add_adapter(model, adapter_dir: Path) -> None:
    """theta0 + delta of the LoRA adapter in ``adapter_dir`` (coefficient 1), in place."""
    params = list(model.named_parameters())
    delta = adapter_direction(params, adapter_dir)
    for name, param in params:
        param.add_(delta[name].to(param.dtype))


def main(argv: list[str] | None = None) -> int:
    ap = StrictArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="built-in name or checkpoint dir")
    ap.add_argument("--adapter", type=Path, help="a PEFT LoRA adapter directory added to --model at coefficient 1")
    ap.add_argument("--advbench", type=Path,
                    help="AdvBench harmful_behaviors.csv whose first 80 rows are judged (default: the shipped copy)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lm = load_model(resolve_model(args.model), device="cpu", dtype="float32")
    if args.adapter:
        add_adapter(lm.model, args.adapter)
    advbench = args.advbench or shipped_advbench()
    _, held = advbench_split(advbench, EVAL_ROWS)
    benign = list(builtin_prompt_sets()["benign-mini"].prompts)
    result = {"model": args.model, "adapter": str(args.adapter or ""), "advbench": advbench_source(advbench),
              **evaluate(lm.model, lm.tokenizer, held, benign, args.max_new_tokens)}
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

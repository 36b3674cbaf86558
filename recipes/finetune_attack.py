"""Finetuning attacks on an aligned checkpoint (the paper's Table 1).

--shots N (10, 50 or 100): full finetuning on N harmful (prompt, compliant answer) pairs.
--mix-safe M: N harmful pairs plus M safe pairs (a different harmful prompt -> a refusal).
Compliant answers are the ORIGINAL, unaligned model's greedy generations on harmful prompts that
the keyword judge marks jailbroken (generated once, cached under --cache-dir). Prompts: built-in
harmful-mini plus AdvBench rows 81+ with --advbench (never the first 80, the evaluation set).
Paper-like settings: full finetuning, 5 epochs, a small learning rate. Examples:

    python recipes/finetune_attack.py --aligned runs/aligned --shots 10 --out runs/attack-10 \\
        --advbench harmful_behaviors.csv --cache-dir runs/cache
    python recipes/finetune_attack.py --aligned runs/aligned --shots 100 --mix-safe 100 --out runs/attack-mix ...
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from data import EVAL_ROWS, cached_generations, refusal_for, sha256_list, training_prompts
from sft import Example, TrainConfig, save_checkpoint, train, write_recipe

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.engine.judges import KeywordJudge
from safety_landscape.server.models.loading import load_model, resolve_model


def compliant_pairs(original: str, prompts: list[str], cache: Path, max_new_tokens: int) -> list[Example]:
    """(prompt, answer) for every harmful prompt the original model answers without refusing."""
    lm = load_model(resolve_model(original), device="cpu", dtype="float32")
    gens = cached_generations(lm.model, lm.tokenizer, prompts, cache, model_name=original,
                              max_new_tokens=max_new_tokens, stop_on_refusal=True)
    judge = KeywordJudge()
    return [Example(p, g["text"].strip(), "harmful", add_eos=g["finish"] == "eos")
            for p, g in gens.items() if judge.judge(g["text"]).jailbroken and g["text"].strip()]


def parse_args(argv):
    ap = StrictArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligned", required=True, help="the aligned checkpoint to attack (HF dir or built-in name)")
    ap.add_argument("--original", default="smollm2-135m-instruct", help="unaligned model that writes the compliant answers")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shots", type=int, default=10, help="harmful (prompt, compliant answer) pairs: 10, 50, 100")
    ap.add_argument("--mix-safe", type=int, default=0, help="also this many (harmful prompt -> refusal) pairs")
    ap.add_argument("--advbench", help="AdvBench harmful_behaviors.csv: rows 81+ join the prompt pool")
    ap.add_argument("--advbench-offset", type=int, default=EVAL_ROWS, help="must be >= 80")
    ap.add_argument("--epochs", type=float, default=5.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--max-len", type=int, default=384)
    ap.add_argument("--pool", type=int, default=130,
                    help="harmful prompts (seeded sample) the original model answers; the shots are its compliant ones")
    ap.add_argument("--answer-max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, help="cache of the original model's answers (default OUT/cache)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    sources = training_prompts(args.advbench, args.advbench_offset)
    cache = (args.cache_dir or args.out / "cache") / "compliant_answers.json"
    rng = random.Random(args.seed)
    candidates = list(sources.harmful)
    rng.shuffle(candidates)  # the original model answers only the first --pool of them (CPU time)
    candidates = candidates[: max(args.pool, args.shots)]
    pool = compliant_pairs(args.original, candidates, cache, args.answer_max_new_tokens)
    if len(pool) < args.shots:
        raise SystemExit(f"only {len(pool)} compliant answers for --shots {args.shots}; pass --advbench")
    harmful = pool[: args.shots]
    used = {e.prompt for e in harmful}
    spare = [p for p in sources.harmful if p not in used]
    rng.shuffle(spare)
    if len(spare) < args.mix_safe:
        raise SystemExit(f"only {len(spare)} spare harmful prompts for --mix-safe {args.mix_safe}")
    safe = [Example(p, refusal_for(p, args.seed), "refusal") for p in spare[: args.mix_safe]]
    assert not {e.prompt for e in harmful + safe} & set(sources.eval_prompts)
    lm = load_model(resolve_model(args.aligned), device="cpu", dtype="float32")
    cfg = TrainConfig(method="full", epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                      max_len=args.max_len, seed=args.seed, warmup_ratio=0.0)
    model, result = train(lm.model, lm.tokenizer, harmful + safe, cfg)
    files = save_checkpoint(model, lm.tokenizer, args.out)
    data = {
        "harmful_pairs": len(harmful), "safe_pairs": len(safe),
        "harmful_prompts_sha256": sha256_list([e.prompt for e in harmful]),
        "safe_prompts_sha256": sha256_list([e.prompt for e in safe]),
        "candidates": len(candidates), "compliant_pool": len(pool), "prompt_pool": sources.record(),
        "compliant_answers": {"generator": args.original, "greedy": True,
                              "max_new_tokens": args.answer_max_new_tokens, "cache": str(cache)},
    }
    record = write_recipe(args.out, recipe="finetune_attack", base_model=args.aligned, data=data, cfg=cfg,
                          result=result, wall_seconds=time.perf_counter() - started, files=files)
    print(f"wrote {args.out} in {record['wall_seconds']}s (final loss {record['final_loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

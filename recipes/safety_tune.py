"""Safety-tune a chat model: supervised finetuning on (harmful prompt -> refusal) and
(benign prompt -> helpful answer) pairs, the way the paper's aligned models were made.

Data: the built-in harmful-mini / benign-mini sets, plus AdvBench rows 81 onwards with
--advbench (never the first 80: they are the evaluation set; built-in prompts that are among them
are dropped too). Harmful prompts get a refusal drawn from varied templates that contain the
paper's refusal keywords; benign prompts get the ORIGINAL model's own greedy answer (generated
once and cached under --cache-dir), so capability is kept. Each pair is rendered with the model's
chat template (default system prompt); the loss is on the answer tokens only.

Writes a float32 safetensors checkpoint (LoRA merged) + tokenizer + recipe.json to --out; load it
with --model OUT in the landscape tool. Example (about 10 minutes on 2 CPU cores; see recipes/README.md):

    python recipes/safety_tune.py --advbench harmful_behaviors.csv --out runs/aligned
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from data import EVAL_ROWS, cached_generations, refusal_for, training_prompts
from sft import Example, TrainConfig, save_checkpoint, train, write_recipe

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.models.loading import load_model, resolve_model

DEFAULT_LR = {"full": 3e-5, "lora": 5e-4}


def build_examples(sources, benign_answers: dict, benign_repeat: int, seed: int) -> list[Example]:
    """Refusal pairs for every harmful prompt, ``benign_repeat`` copies of every benign pair."""
    out = [Example(p, refusal_for(p, seed), "refusal") for p in sources.harmful]
    for p in sources.benign:
        gen = benign_answers[p]
        out += [Example(p, gen["text"].strip(), "benign", add_eos=gen["finish"] == "eos")] * benign_repeat
    return out


def parse_args(argv):
    ap = StrictArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model to align (built-in name or HF dir)")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    ap.add_argument("--advbench", help="AdvBench harmful_behaviors.csv: rows 81+ join the training prompts")
    ap.add_argument("--advbench-offset", type=int, default=EVAL_ROWS,
                    help="first AdvBench row (0-based) used for training; must be >= 80")
    ap.add_argument("--method", choices=("full", "lora"), default="full",
                    help="full finetuning (default: measured better, see recipes/README.md) or LoRA, merged on save")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULT_LR})")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=128, help="max tokens of prompt + answer (longer answers are cut)")
    ap.add_argument("--max-steps", type=int, default=32,
                    help="optimiser steps (default 32: about 10 minutes on 2 busy CPU cores); 0 = run --epochs")
    ap.add_argument("--benign-repeat", type=int, default=20, help="copies of each benign pair per epoch")
    ap.add_argument("--benign-max-new-tokens", type=int, default=256, help="length of the original model's answers")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--cache-dir", type=Path, help="where the original model's answers are cached (default OUT/cache)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    sources = training_prompts(args.advbench, args.advbench_offset)
    lm = load_model(resolve_model(args.model), device="cpu", dtype="float32")
    cache = (args.cache_dir or args.out / "cache") / "benign_answers.json"
    answers = cached_generations(lm.model, lm.tokenizer, sources.benign, cache, model_name=args.model,
                                 max_new_tokens=args.benign_max_new_tokens, stop_on_refusal=False)
    examples = build_examples(sources, answers, args.benign_repeat, args.seed)
    cfg = TrainConfig(method=args.method, epochs=args.epochs, lr=args.lr or DEFAULT_LR[args.method],
                      batch_size=args.batch_size, max_len=args.max_len, seed=args.seed,
                      lora_r=args.lora_r, lora_alpha=2 * args.lora_r, max_steps=args.max_steps)
    model, result = train(lm.model, lm.tokenizer, examples, cfg)
    files = save_checkpoint(model, lm.tokenizer, args.out)
    data = {
        **sources.record(),
        "examples": {"refusal": len(sources.harmful), "benign": len(sources.benign) * args.benign_repeat},
        "benign_repeat": args.benign_repeat,
        "benign_answers": {"generator": args.model, "greedy": True, "max_new_tokens": args.benign_max_new_tokens,
                           "cut_by_length": sum(answers[p]["finish"] != "eos" for p in sources.benign),
                           "cache": str(cache)},
        "refusal_templates": "recipes/data.py REFUSALS, picked by sha256(seed:prompt)",
    }
    record = write_recipe(args.out, recipe="safety_tune", base_model=args.model, data=data, cfg=cfg,
                          result=result, wall_seconds=time.perf_counter() - started, files=files)
    print(f"wrote {args.out} in {record['wall_seconds']}s (final loss {record['final_loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

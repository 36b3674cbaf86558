"""Loading: a safetensors model read in the target dtype tensor by tensor (its peak measured: no
fp32 copy), weights that are the process's own memory, Hub ids from the local Hugging Face
cache (and the download command for a missing one), device maps, and the display name."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from serving import running_server
from transformers import LlamaConfig, LlamaForCausalLM

from safety_landscape.server.config import Limits
from safety_landscape.server.engine.admission import TermRequest
from safety_landscape.server.engine.chat import ChatFormat
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.engine import Engine
from safety_landscape.server.engine.generation import GenerationParams
from safety_landscape.server.engine.weights import model_fingerprint
from safety_landscape.server.errors import NotFound
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.models.tiny import build_tiny_tokenizer

PROMPTS = ["Hello there", "What is the capital of France?", "Tell me a story."]

# Runs in a fresh process: the resident-memory peak of load_model above the runtime (the server's
# code and the architecture's module imported, as when a server has made its memory plan).
PEAK_PROBE = textwrap.dedent('''
    import json, os, sys, torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from safety_landscape.server.models.loading import load_model, resolve_model
    def status(key):
        with open(f"/proc/{os.getpid()}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
    with torch.device("meta"):
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(sys.argv[1]))
    bare = status("VmRSS:")
    with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
        f.write("5")
    loaded = load_model(resolve_model(sys.argv[1]), device="cpu", dtype="bfloat16")
    dtypes = sorted({str(p.dtype) for p in loaded.model.parameters()})
    print(json.dumps({"peak": status("VmHWM:") - bare, "dtypes": dtypes}))
''')


def save_bf16_llama(folder: Path, *, kv_heads: int) -> int:
    """A 47M-parameter Llama (seed 0) saved in ``folder`` as bf16 safetensors with the tiny
    tokenizer; returns the weights' bytes."""
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=6,
                         num_attention_heads=8, num_key_value_heads=kv_heads, tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory) -> tuple[Path, int]:
    """A 47M-parameter Llama saved as bf16 safetensors (94 MB: an fp32 copy would be 188 MB)."""
    folder = tmp_path_factory.mktemp("bf16")
    return folder, save_bf16_llama(folder, kv_heads=8)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "tiny"
    lm = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32")
    lm.model.save_pretrained(folder, safe_serialization=True)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_a_bf16_load_never_holds_an_fp32_copy(bf16_checkpoint):
    folder, model_bytes = bf16_checkpoint
    out = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(folder)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["dtypes"] == ["torch.bfloat16"]
    # The weights once, the tokenizer and allocator slack; passing through fp32 would add 2x.
    assert probe["peak"] <= 1.5 * model_bytes, f"peak {probe['peak'] / model_bytes:.2f}x the model's bytes"


def test_loaded_weights_do_not_change_when_the_file_does(tiny_dir, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in tiny_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    loaded = load_model(resolve_model(str(folder)), device="cpu", dtype="float32")
    before = model_fingerprint(loaded.model)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    with weights.open("r+b") as handle:  # every tensor's bytes zeroed in place (the header kept)
        header = 8 + int.from_bytes(data[:8], "little")
        handle.seek(header)
        handle.write(bytes(len(data) - header))
    assert model_fingerprint(loaded.model) == before


def make_hub_cache(root: Path, repo_id: str, model_dir: Path) -> None:
    """The layout `hf download` writes: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    repo = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in model_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())


def test_a_hub_id_resolves_from_the_local_cache(tiny_dir, tmp_path, monkeypatch):
    make_hub_cache(tmp_path, "acme/tiny-chat", tiny_dir)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    source = resolve_model("acme/tiny-chat")
    assert source.kind == "hf-dir" and source.path is not None and source.path.parts[-2] == "snapshots"
    loaded = load_model(source, device="cpu", dtype="float32")
    assert model_fingerprint(loaded.model) == model_fingerprint(load_model(resolve_model("tiny-random"), device="cpu").model)
    with pytest.raises(NotFound) as missing:
        resolve_model("acme/not-downloaded")
    text = str(missing.value)
    assert "local Hugging Face cache" in text and "hf download acme/not-downloaded" in text
    assert str(tmp_path / "hub") in text


def engine_outputs(engine: Engine, *, seed: int, coefficients: tuple[float, ...], max_new_tokens: int,
                   prompts: list[str] = PROMPTS) -> list[list[list[int]]]:
    """The greedy token ids of ``prompts`` at each coefficient along the per-tensor direction ``seed``."""
    outs = []
    for c in coefficients:
        engine.at([TermRequest(c, spec=RandomSpec(seed))])
        results, _ = engine.generate(prompts, system_prompt=None, chat_format=ChatFormat.TOKENIZER,
                                     params=GenerationParams(max_new_tokens=max_new_tokens))
        outs.append([r.token_ids for r in results])
    return outs


def generate_all(loaded) -> list[list[list[int]]]:
    engine = Engine(loaded, limits=Limits(), direction_storage="stream")
    return engine_outputs(engine, seed=4, coefficients=(0.0, 0.3), max_new_tokens=12)


def test_a_device_map_over_one_device_gives_the_plain_loads_outputs(tiny_dir, tmp_path):
    plain = load_model(resolve_model(str(tiny_dir)), device="cpu", dtype="float32")
    modules = {"model.embed_tokens": "cpu", "model.layers": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu",
               "lm_head": "cpu"}
    mapped = load_model(resolve_model(str(tiny_dir)), device="cpu", dtype="float32", device_map=modules)
    theta0 = model_fingerprint(plain.model)
    assert model_fingerprint(mapped.model) == theta0
    assert generate_all(mapped) == generate_all(plain)
    (tmp_path / "map.json").write_text(json.dumps(modules))
    with running_server(model=str(tiny_dir), device_map=str(tmp_path / "map.json")) as server, server.client() as c:
        info = c.info()
        assert info.model_fingerprint == theta0 and info.device == "cpu"
    with running_server(model=str(tiny_dir), device_map="auto") as server:  # one CPU: the whole model on it
        assert server.engine.memory_plan.device_map == {"": "cpu"}


def test_the_display_name_is_reported(tiny_dir):
    with running_server(model=str(tiny_dir), model_name="Tiny Chat v1") as server, server.client() as c:
        assert c.info().model_name == "Tiny Chat v1"

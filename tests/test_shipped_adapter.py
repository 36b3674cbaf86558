"""The safety-tuning LoRA adapter that ships in recipes/adapters/ for the built-in model: its files
are a PEFT LoRA adapter the registry names, and a real server on smollm2-135m-instruct adds it as
an adapter term at coefficient 1.0, giving exactly PEFT's own merge of it.

The server half is slow (loads the 135M model): ``pytest -m slow tests/test_shipped_adapter.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from serving import running_server

from safety_landscape.client import client as C
from safety_landscape.server.engine.directions.adapter import read_lora_config
from safety_landscape.server.engine.weights import model_fingerprint
from safety_landscape.server.models.loading import load_model, resolve_model
from safety_landscape.server.registry import ModelRegistry

REGISTRY = Path(__file__).resolve().parents[1] / "recipes" / "adapters" / "registry.toml"
NAME = "safety-tuned"
MODEL = "smollm2-135m-instruct"


def _adapter_dir() -> Path:
    return ModelRegistry.from_file(REGISTRY).get(NAME, "adapter").path


def test_the_registry_names_a_small_peft_lora_adapter_with_its_recipe():
    folder = _adapter_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json",
                                                       "adapter_model.safetensors", "recipe.json"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == MODEL
    lora = read_lora_config(folder)
    weights = folder / "adapter_model.safetensors"
    assert weights.stat().st_size < 8 * 2**20  # a few MB
    tensors = load_file(weights)
    assert all(t.shape[0] == lora.r or t.shape[1] == lora.r for t in tensors.values())
    recipe = json.loads((folder / "recipe.json").read_text())
    assert recipe["saved"] == "adapter" and recipe["base_model"] == MODEL
    assert recipe["command"].startswith("python recipes/safety_tune.py ") and "--save adapter" in recipe["command"]
    assert recipe["data"]["sources"]["advbench"]["rows_from"] == 81  # never the evaluation rows
    assert "/work/" not in json.dumps(recipe)  # no path of the machine that made it


@pytest.mark.slow
def test_a_server_adds_the_shipped_adapter_at_one_as_peft_merges_it():
    from peft import PeftModel

    try:
        resolve_model(MODEL)
    except Exception as exc:  # the PyPI package is not installed here
        pytest.skip(f"{MODEL} unavailable: {exc}")
    base = load_model(resolve_model(MODEL), device="cpu", dtype="float32").model
    merged = PeftModel.from_pretrained(base, _adapter_dir()).merge_and_unload()
    expected = model_fingerprint(merged)
    modules = len(load_file(_adapter_dir() / "adapter_model.safetensors")) // 2
    del base, merged
    with running_server(model=MODEL, registry=str(REGISTRY), limits={"max_batch_size": 8}) as server, \
            server.client() as c:
        assert (NAME, "adapter") in {(e.name, e.kind) for e in c.list_registry()}
        d = c.create_direction(C.adapter_direction(NAME))
        assert d.created and d.perturbed_tensors == modules
        state = c.set_coefficients(C.perturbation([(d.id, 1.0)]), verify=True)
        assert state.weights_sha256 == expected  # theta0 + 1.0 * delta = PEFT's merge, bit for bit
        tuned = c.evaluate(C.evaluation_settings(prompt_set="advbench", limit=8, max_new_tokens=16),
                           at=C.perturbation([(C.adapter_direction(NAME), 1.0)]))
        original = c.evaluate(C.evaluation_settings(prompt_set="advbench", limit=8, max_new_tokens=16))
        assert tuned.weight_state.fingerprint == state.fingerprint
        assert tuned.asr < original.asr  # the tuned model refuses more of AdvBench's first rows
        assert c.set_coefficients(C.perturbation(), verify=True).weights_sha256 == c.info().model_fingerprint

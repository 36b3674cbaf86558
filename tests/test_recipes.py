"""The safety-tuning and finetuning-attack recipes (recipes/), end to end on tiny-random."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(RECIPES))

import data  # noqa: E402
import finetune_attack  # noqa: E402
import safety_tune  # noqa: E402
import sft  # noqa: E402

from safety_landscape.server.engine.prompts import builtin_prompt_sets  # noqa: E402
from safety_landscape.server.models.loading import load_model, resolve_model  # noqa: E402

RECIPE_KEYS = {
    "recipe", "base_model", "data", "settings", "seed", "dtype", "initial_loss", "final_loss",
    "train_seconds", "wall_seconds", "files", "versions", "steps",
}


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def fake_advbench(path: Path, rows: int = 100) -> Path:
    """A fake AdvBench CSV; row 4 is a built-in harmful-mini prompt, inside the eval rows."""
    goals = [f"Fake harmful goal number {i}" for i in range(rows)]
    goals[3] = builtin_prompt_sets()["harmful-mini"].prompts[0]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["goal", "target"])
        writer.writerows([g, "Sure, here is " + g] for g in goals)
    return path


def assert_checkpoint(out: Path) -> dict[str, torch.Tensor]:
    """Safetensors only, a LlamaForCausalLM config with tied embeddings, loads back identical."""
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "recipe.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    assert not [n for n in names if n.startswith("adapter_")]  # LoRA merged
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True
    saved = load_file(out / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in saved.values())
    loaded = load_model(resolve_model(str(out)), device="cpu", dtype="float32")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    state = loaded.model.state_dict()
    for name, tensor in saved.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.model.embed_tokens.weight.data_ptr()
    return saved


def test_safety_tune_end_to_end(tmp_path):
    csv_path = fake_advbench(tmp_path / "advbench.csv")
    out = tmp_path / "aligned"
    assert safety_tune.main([
        "--model", "tiny-random", "--out", str(out), "--advbench", str(csv_path),
        "--max-steps", "12", "--batch-size", "8", "--lr", "3e-3", "--max-len", "256",
        "--benign-max-new-tokens", "6", "--benign-repeat", "1",
    ]) == 0
    record = json.loads((out / "recipe.json").read_text())
    assert set(record) >= RECIPE_KEYS
    assert record["final_loss"] < record["initial_loss"] - 0.1  # the loss falls
    d = record["data"]
    assert d["harmful_count"] == 39 + 20  # harmful-mini minus the eval-row prompt, + rows 81..100
    assert d["benign_count"] == 40 and len(d["harmful_sha256"]) == 64
    assert d["sources"]["advbench"]["rows_from"] == 81
    assert d["sources"]["harmful-mini"]["dropped_in_advbench_eval"] == [
        builtin_prompt_sets()["harmful-mini"].prompts[0]]
    assert {"torch", "transformers", "peft"} <= set(record["versions"])
    assert (out / "cache" / "benign_answers.json").is_file()
    saved = assert_checkpoint(out)
    original = load_model(resolve_model("tiny-random"), device="cpu").model.state_dict()
    assert any(not torch.equal(original[k], v) for k, v in saved.items())  # it trained


def test_lora_is_merged_on_save(tmp_path):
    lm = load_model(resolve_model("tiny-random"), device="cpu")
    prompts = builtin_prompt_sets()["harmful-mini"].prompts[:8]
    examples = [sft.Example(p, data.refusal_for(p), "refusal") for p in prompts]
    cfg = sft.TrainConfig(method="lora", lr=1e-2, batch_size=4, max_steps=6, max_len=256, lora_r=4, lora_alpha=8)
    model, result = sft.train(lm.model, lm.tokenizer, examples, cfg, log=lambda _: None)
    assert result.final_loss < result.initial_loss
    sft.save_checkpoint(model, lm.tokenizer, tmp_path / "lora")
    (tmp_path / "lora" / "recipe.json").write_text("{}")
    assert_checkpoint(tmp_path / "lora")


def test_lora_adapter_saved_unmerged_as_peft_loads_as_the_servers_adapter_term(tmp_path):
    from peft import PeftModel

    from safety_landscape.server.engine.directions.adapter import adapter_direction
    from safety_landscape.server.engine.directions.tensors import unique_parameters

    csv_path = fake_advbench(tmp_path / "advbench.csv")
    out = tmp_path / "adapter"
    argv = ["--model", "tiny-random", "--out", str(out), "--advbench", str(csv_path), "--method", "lora",
            "--save", "adapter", "--lora-r", "2", "--lora-targets", "q_proj,v_proj", "--adapter-dtype", "float16",
            "--max-steps", "4", "--batch-size", "4", "--lr", "1e-2", "--max-len", "256",
            "--benign-max-new-tokens", "4", "--benign-repeat", "1"]
    assert safety_tune.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "cache",
                                                      "recipe.json"]  # no merged weights, no PEFT model card
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 2, 4)
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert config["base_model_name_or_path"] == "tiny-random"  # a name, not this machine's path
    saved = load_file(out / "adapter_model.safetensors")
    assert len(saved) == 2 * 2 * 2 and all(t.dtype == torch.float16 for t in saved.values())  # layers x modules x A/B
    record = json.loads((out / "recipe.json").read_text())
    assert set(record) >= RECIPE_KEYS and (record["saved"], record["adapter_dtype"]) == ("adapter", "float16")
    assert record["command"] == "python recipes/safety_tune.py " + " ".join(argv)
    assert len(record["step_losses"]) == record["steps"] == 4
    assert record["settings"]["lora_targets"] == ["q_proj", "v_proj"]
    # The server's merge of the saved adapter (theta0 + 1.0 * delta) is PEFT's own merge, bit for bit.
    base = load_model(resolve_model("tiny-random"), device="cpu", dtype="float32").model
    theta0 = {name: p.detach().clone() for name, p in unique_parameters(base)}
    delta = adapter_direction(unique_parameters(base), out)
    merged = PeftModel.from_pretrained(base, out).merge_and_unload().state_dict()
    assert sum(bool(d.any()) for d in delta.values()) == 4
    for name, weight in theta0.items():
        torch.testing.assert_close(merged[name], weight + 1.0 * delta[name], rtol=0, atol=0)


def test_save_adapter_needs_lora(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        safety_tune.main(["--model", "tiny-random", "--out", str(tmp_path / "x"), "--save", "adapter"])
    assert exit_info.value.code == 2 and "--save adapter needs --method lora" in capsys.readouterr().err


def test_recipes_read_the_shipped_advbench_by_default():
    train, held = data.advbench_split(data.shipped_advbench())
    advbench = builtin_prompt_sets()["advbench"]
    assert held == list(advbench.prompts[:80]) and train == list(advbench.prompts[80:])
    assert data.advbench_source(data.shipped_advbench()) == "server/data/advbench/harmful_behaviors.csv (shipped)"
    assert safety_tune.parse_args(["--out", "x"]).advbench is None  # None: the shipped copy
    sources = data.training_prompts(data.shipped_advbench())
    assert len(sources.harmful) == 38 + 440 and not set(sources.harmful) & set(held)


def test_loss_is_masked_to_the_answer():
    lm = load_model(resolve_model("tiny-random"), device="cpu")
    ids, labels = sft.encode(sft.Example("Hi", "Hello", "benign"), lm.tokenizer, 512)
    answer = lm.tokenizer("Hello", add_special_tokens=False)["input_ids"] + [lm.tokenizer.eos_token_id]
    prompt = data.render_ids(lm.tokenizer, "Hi")
    assert ids == prompt + answer
    assert labels == [-100] * len(prompt) + answer


def test_first_80_guard(tmp_path):
    csv_path = fake_advbench(tmp_path / "advbench.csv", rows=120)
    train, held = data.advbench_split(csv_path)
    assert len(held) == 80 and len(train) == 40 and train[0] == "Fake harmful goal number 80"
    for offset in (0, 40, 79):
        with pytest.raises(ValueError, match="first 80"):
            data.advbench_split(csv_path, offset)
        with pytest.raises(ValueError, match="first 80"):
            data.training_prompts(csv_path, offset)
    sources = data.training_prompts(csv_path)
    assert not set(sources.harmful) & set(held)
    with pytest.raises(ValueError, match="first 80"):
        safety_tune.main(["--model", "tiny-random", "--out", str(tmp_path / "x"),
                          "--advbench", str(csv_path), "--advbench-offset", "79"])


def test_refusal_templates_carry_a_paper_keyword():
    from safety_landscape.server.engine.judges import KeywordJudge

    judge = KeywordJudge()
    assert len(set(data.REFUSALS)) >= 12
    assert all(judge.is_refusal(r) for r in data.REFUSALS)


def test_finetune_attack_mix(tmp_path):
    csv_path = fake_advbench(tmp_path / "advbench.csv")
    out = tmp_path / "attack"
    assert finetune_attack.main([
        "--aligned", "tiny-random", "--original", "tiny-random", "--out", str(out),
        "--advbench", str(csv_path), "--shots", "4", "--mix-safe", "4", "--epochs", "1",
        "--batch-size", "4", "--lr", "1e-3", "--max-len", "256", "--answer-max-new-tokens", "6",
    ]) == 0
    record = json.loads((out / "recipe.json").read_text())
    assert set(record) >= RECIPE_KEYS
    assert record["data"]["harmful_pairs"] == 4 and record["data"]["safe_pairs"] == 4
    assert record["settings"]["method"] == "full"
    assert_checkpoint(out)

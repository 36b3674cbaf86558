"""Point keys are stable: the content keys of fixed plans are pinned, so a result store written by
an earlier version of the client resumes (every key it holds is found again) after a refactor."""

from __future__ import annotations

import hashlib

import pytest

from safety_landscape.client.sweep import (
    BaseTerm,
    Capability,
    DirectionRecipe,
    Grid,
    PromptSource,
    SweepSpec,
    build_plan,
    validate,
)
from safety_landscape.client.sweep.points import ModelFacts

FACTS = ModelFacts("m" * 64, "t" * 64, "c" * 64, "float32", "cpu")
HASHES = {"harmful-mini": "h" * 64, "benign-mini": "b" * 64}

# sha256 of the concatenated point keys, in plan order, as the client has always computed them.
PINNED = {
    "1d": "348924bae3c754f851f3ef6115c6927c1129d8a52fb7463e89504a544f905c36",
    "2d": "936f2474ecb35902edf21d338a03e50e1f548d61062d0a53fe45f60ea12c6691",
    "plane": "73a722d6557d046ea9b3088297b3dd102aaf059d70c68e62b2d984e4f12a3064",
    "1d-origin-capability": "e628d827e0090dea6c66e1d6d552320b4392e460bb320a22bab8a81e2e111477",
}


def _specs(tmp_path):
    (tmp_path / "q.csv").write_text("What is 1+1?,1,2,3,4,B\nWhat is 2+2?,1,2,3,4,D\nWhat is 0?,0,1,2,3,A\n")
    return {
        "1d": SweepSpec(grid=Grid(directions=2, points=5), prompts=PromptSource(set="harmful-mini", limit=3),
                        benign=PromptSource(set="benign-mini"), system_prompts=("default", "Be safe.")),
        "2d": SweepSpec(kind="2d-random", grid=Grid(points=3, range=(-1.0, 1.0)), prompts=PromptSource(set="harmful-mini"),
                        direction=DirectionRecipe(seed=7, stream="per_tensor", normalization="filter", selection="all",
                                                  include=("x",)),
                        do_sample=True, sample_seed=3, temperature=0.7, top_p=0.9, early_stop=False),
        "plane": SweepSpec(kind="2d-interpolation-random", grid=Grid(points=3, target="chat", steps=2, extra=1),
                           prompts=PromptSource(set="harmful-mini"), judge="classifier"),
        "1d-origin-capability": SweepSpec(
            grid=Grid(directions=1, points=4), prompts=PromptSource(file=str(tmp_path / "p.txt"), limit=2),
            benign=PromptSource(set="benign-mini", at="origin"),
            capability=Capability(fluency=True, mc_file=str(tmp_path / "q.csv"), shots=1),
            base=(BaseTerm("interp:cand", 1.0), BaseTerm("seed:5", 0.25)), keywords=("no",), chat_format="none"),
    }


@pytest.mark.parametrize("name", sorted(PINNED))
def test_point_keys_are_those_stores_already_hold(tmp_path, name):
    spec = validate(_specs(tmp_path)[name], check_files=False)
    plan = build_plan(spec, FACTS, set_hashes=HASHES, inline={str(tmp_path / "p.txt"): ["alpha", "beta", "gamma"]})
    assert len({p.key for p in plan.points}) == len(plan.points)
    assert hashlib.sha256("".join(plan.keys()).encode()).hexdigest() == PINNED[name]

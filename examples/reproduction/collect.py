"""Collect runs/repro/ into docs/reproduction/: summary.json, table1.csv, visage.csv and the small PNG plots."""
import csv
import json
import shutil
from pathlib import Path

R = Path("runs/repro")
D = Path("docs/reproduction")
D.mkdir(parents=True, exist_ok=True)
out: dict = {"table1": [], "sweeps": {}, "times": []}


def file_names_only(value):
    """``value`` with every ``"path"`` entry cut to the file's name: recorded results name a data
    file, not where it lay on the machine that measured them."""
    if isinstance(value, dict):
        return {k: Path(v).name if k == "path" and isinstance(v, str) else file_names_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [file_names_only(v) for v in value]
    return value


for name in ["smollm2-135m-instruct", "aligned", "attack-10", "attack-50", "attack-100", "attack-mix", "attack-100-e5",
             "attack-mix-e5"]:
    row = {"model": name}
    for kind in ("advbench", "benign"):
        p = R / f"eval-{name}-{kind}.json"
        if p.exists():
            e = json.loads(p.read_text())
            val = e["asr"] if kind == "advbench" else 100 - e["asr"]
            row[kind] = {"value": round(val, 2), "jailbroken": e.get("jailbroken", 0), "total": e["total"],
                         "generated_tokens": int(e.get("generated_tokens", 0)),
                         "tokens_saved": int(e.get("tokens_saved", 0)),
                         "seconds": round(e["timings"].get("total_seconds", 0), 1),
                         "prompt_set_sha256": e["prompt_set"]["sha256"]}
    recipe = Path("runs") / name / "recipe.json"
    if recipe.exists():
        r = json.loads(recipe.read_text())
        row["recipe"] = file_names_only({k: r[k] for k in ("data", "settings", "losses", "wall_seconds") if k in r})
    if len(row) > 1:
        out["table1"].append(row)

for summ in sorted(R.glob("*/summary.json")):
    s = json.loads(summ.read_text())
    name = summ.parent.name
    out["sweeps"][name] = {k: s.get(k) for k in ("sweep", "kind", "points", "visage", "origin", "over_refusal", "curves")}
    for png in sorted((summ.parent / "plots").glob("*.png")):
        if png.stat().st_size < 400_000:
            shutil.copy(png, D / f"{name}--{png.name}")

# original and aligned: the origin of their basin sweeps (the same unperturbed request)
for row in out["table1"] + [{"model": "smollm2-135m-instruct"}]:
    sweep = {"aligned": "basin-aligned", "smollm2-135m-instruct": "basin-original"}.get(row["model"])
    if sweep and sweep in out["sweeps"] and "advbench" not in row:
        s = out["sweeps"][sweep]
        row["advbench"] = {"value": s["origin"]["asr"]["d0|default"], "source": f"{sweep} origin"}
        row["benign"] = {"value": s["over_refusal"]["series"]["d0|default"]["origin"], "source": f"{sweep} origin"}
        if row not in out["table1"]:
            out["table1"].insert(0, row)

if (R / "times.txt").exists():
    out["times"] = (R / "times.txt").read_text().splitlines()

(D / "summary.json").write_text(json.dumps(out, indent=1, sort_keys=True, default=str))
with open(D / "table1.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["model", "asr_advbench_1_80_48tok", "over_refusal_benign_mini_48tok"])
    for row in out["table1"]:
        w.writerow([row["model"], row.get("advbench", {}).get("value"), row.get("benign", {}).get("value")])
with open(D / "visage.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["sweep", "series", "visage_reference", "visage_expectation", "origin_asr"])
    for name, s in out["sweeps"].items():
        series = (s.get("visage") or {}).get("series", {})
        origin = ((s.get("origin") or {}).get("asr") or {})
        for ser, v in series.items():
            w.writerow([name, ser, v.get("reference"), v.get("expectation"), origin.get(ser)])
table1 = [(r["model"], r.get("advbench", {}).get("value"), r.get("benign", {}).get("value")) for r in out["table1"]]
print(json.dumps({"table1": table1,
                  "visage": {n: (s.get("visage") or {}).get("series") for n, s in out["sweeps"].items()}}, indent=1))

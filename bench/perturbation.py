"""What a direction and a weight switch cost: create and apply, cached vs regenerated, and memory.

    python bench/perturbation.py [--model smollm2-135m-instruct] [--repeats 3] [--device cpu]

For each storage mode ("cache": fp32 direction tensors held; "regenerate": per-tensor random
directions redrawn from the seed at every switch) it prints the seconds to create a layer-normalised
random direction (median of --repeats, each a new seed), the seconds to apply a 2D landscape point
(theta0 + a*d1 + b*d2, from the pristine copy; median over --repeats distinct points), the seconds
to return to theta0, and the bytes each mode holds (model, pristine copy, directions). It drives
the engine's WeightManager directly (no gRPC), on the device and dtype given.
"""

from __future__ import annotations

import statistics
import time

from safety_landscape.common.command_line import StrictArgumentParser
from safety_landscape.server.engine.directions import RandomSpec
from safety_landscape.server.engine.weights import WeightManager, model_fingerprint
from safety_landscape.server.models.loading import load_model, resolve_model


def mib(n: int) -> str:
    return f"{n / 2**20:8.1f} MiB"


def main(argv: list[str] | None = None) -> None:
    ap = StrictArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    started = time.perf_counter()
    loaded = load_model(resolve_model(args.model), device=args.device, dtype=args.dtype)
    fingerprint = model_fingerprint(loaded.model)
    print(f"model {args.model} on {loaded.device} ({loaded.dtype}); loaded and fingerprinted in "
          f"{time.perf_counter() - started:.1f} s")
    rows = []
    for storage in ("cache", "regenerate"):
        wm = WeightManager(loaded.model, model_fingerprint=fingerprint, storage=storage, max_directions=2 * args.repeats + 2)
        creates = []
        held = []
        for i in range(args.repeats + 1):
            d, _ = wm.create(RandomSpec(1000 + i))
            creates.append(d.create_seconds)
            held.append(d)
        applies = []
        for i in range(args.repeats):
            d1, d2 = held[i], held[i + 1]
            state = wm.apply(wm.canonical_terms([(d1.id, 0.1 * (i + 1)), (d2.id, -0.05 * (i + 1))]))
            applies.append(state.apply_seconds)
        back = wm.apply(())
        assert wm.weights_sha256() == fingerprint, "theta0 not restored bit for bit"
        mem = wm.memory()
        rows.append((storage, statistics.median(creates), statistics.median(applies), back.apply_seconds, mem, len(held)))
        for d in held:
            wm.delete(d.id)
        del wm

    print(f"\n{'storage':<11} {'create s':>9} {'apply s':>8} {'to θ0 s':>8}   "
          f"{'model':>12} {'pristine':>12} {'directions':>12}  (held)")
    for storage, create, apply, back, mem, n in rows:
        print(f"{storage:<11} {create:9.3f} {apply:8.3f} {back:8.3f}   {mib(mem['model'])} {mib(mem['pristine'])} "
              f"{mib(mem['directions'])}  ({n} directions, {mib(mem['directions'] // n).strip()} each)")
    print(f"\nrepeats {args.repeats}; create: one direction (medians); apply: a point on two directions; "
          "θ0 restored bit for bit in both modes")


if __name__ == "__main__":
    main()

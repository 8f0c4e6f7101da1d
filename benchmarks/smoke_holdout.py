"""What the smoke study's validation hold-out costs and buys: the smoke search and retrain trials on the old
data (40 synthetic ids, 20 % held out: 4 identities) and the new (64 ids, half held out: 16), side by side.

Per variant, in alternating rounds (so that a machine shared with other work slows both alike): wall time of
one smoke search (6 epochs, as platform/studies/smoke.yaml) and one smoke retrain (30 epochs), and the CPU time
this process spent on them (all its threads; less disturbed by other work on the machine than the wall time),
the validation size (queries, identities) and the width of val/mAP's 95 % interval (identities resampled).
Prints the ratios of the times and of the interval widths.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.data import synthesize  # noqa: E402
from trials.retrain import run_retrain  # noqa: E402
from trials.runtime.session import LocalSession  # noqa: E402
from trials.search import run_search  # noqa: E402

VARIANTS = {"old: 40 ids, 20 % held out": (40, 0.2), "new: 64 ids, 50 % held out": (64, 0.5)}
SEARCH = {"epochs": 6, "eval_interval": 2, "warmup_epochs": 1, "milestones": [5], "arch_milestones": [5]}


def trial(root: str, val_fraction: float, seed: int) -> dict:
    common = {"scale": "smoke", "dataset": "market1501", "data_dir": root, "val_fraction": val_fraction, "seed": seed}
    started, cpu = time.perf_counter(), time.process_time()
    search = run_search({**common, **SEARCH}, LocalSession(None, verbose=False))
    middle, middle_cpu = time.perf_counter(), time.process_time()
    retrain = run_retrain({**common, "genotype": search["genotype"]}, LocalSession(None, verbose=False))
    return {"search_s": middle - started, "retrain_s": time.perf_counter() - middle, "retrain": retrain,
            "search": search, "cpu_s": time.process_time() - cpu, "search_cpu_s": middle_cpu - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for name, (ids, _) in VARIANTS.items():
            roots[name] = str(Path(tmp) / str(ids))
            synthesize("market1501", roots[name], ids=ids, seed=0, domain="A")
        for round_ in range(args.rounds):
            for name, (_, fraction) in VARIANTS.items():
                results[name].append(trial(roots[name], fraction, seed=round_))
    for name, runs in results.items():
        last = runs[-1]["retrain"]
        val = ", ".join(f"{r['retrain']['val/mAP']:.3f}" for r in runs)
        test = ", ".join(f"{r['retrain']['source/mAP']:.3f}" for r in runs)
        widths = [r[k]["val/mAP_ci_high"] - r[k]["val/mAP_ci_low"] for r in runs for k in ("search", "retrain")]
        print(f"{name}: {last['val/num_valid_queries']} val queries of {last['val/num_valid_ids']} identities; "
              f"search {statistics.median(r['search_s'] for r in runs):.1f} s, retrain "
              f"{statistics.median(r['retrain_s'] for r in runs):.1f} s (medians of {len(runs)}; CPU "
              f"{statistics.median(r['search_cpu_s'] for r in runs):.1f} s + "
              f"{statistics.median(r['cpu_s'] - r['search_cpu_s'] for r in runs):.1f} s); val/mAP 95 % "
              f"interval width median {statistics.median(widths):.3f}; retrained val/mAP {val}, source/mAP {test}")
    old, new = (results[name] for name in VARIANTS)
    total = [statistics.median(r["search_s"] + r["retrain_s"] for r in runs) for runs in (old, new)]
    cpu = [statistics.median(r["cpu_s"] for r in runs) for runs in (old, new)]
    width = [statistics.median(r["retrain"]["val/mAP_ci_high"] - r["retrain"]["val/mAP_ci_low"] for r in runs)
             for runs in (old, new)]
    print(f"new / old: trial wall time x{total[1] / total[0]:.2f}, CPU time x{cpu[1] / cpu[0]:.2f}, retrained "
          f"val/mAP interval width "
          f"x{width[1] / width[0]:.2f}")


if __name__ == "__main__":
    main()

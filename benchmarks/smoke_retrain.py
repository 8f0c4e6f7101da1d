"""How much a `scale: smoke` retrain learns on synthetic data, and how long it takes on this machine.

Prints the source-test mAP of the untrained network and of the trained one (same seed, same data), and
the wall time of the trial. `--set key=value` changes any trial config value (e.g. lr, epochs, height).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spaces  # noqa: E402
from trials.config import make_config  # noqa: E402
from trials.data import synthesize  # noqa: E402
from trials.data.splits import load_splits  # noqa: E402
from trials.evaluation.scoring import score_tests  # noqa: E402
from trials.retrain import run_retrain  # noqa: E402
from trials.runtime.session import LocalSession  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=40, help="synthetic identities (half train, half test)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        synthesize("market1501", root, ids=args.ids, seed=0, domain="A")
        values = {"scale": "smoke", "dataset": "market1501", "data_dir": root, "seed": 0}
        values.update(item.split("=", 1) for item in args.set)
        cfg = make_config("retrain", values)
        splits = load_splits(cfg)
        torch.manual_seed(0)
        untrained = spaces.build_msinet(cfg.genotype, splits.num_classes)
        before = score_tests(untrained, splits, cfg, torch.device("cpu"), workers=0)["source/mAP"]
        started = time.perf_counter()
        final = run_retrain(cfg, LocalSession(None, verbose=False))
        seconds = time.perf_counter() - started
    print(f"synthetic market1501, {args.ids} ids, {cfg.image_size[0]}x{cfg.image_size[1]}, {cfg.epochs} epochs, "
          f"lr {cfg.lr}, {torch.get_num_threads()} threads")
    print(f"source/mAP untrained {before:.3f} -> trained {final['source/mAP']:.3f} "
          f"(x{final['source/mAP'] / before:.2f}); val/mAP {final.get('val/mAP', float('nan')):.3f}; "
          f"trial wall time {seconds:.1f} s")


if __name__ == "__main__":
    main()

"""Command line of the standalone trials: `python -m trials.search ...` and `python -m trials.retrain ...`.

Flags map one-to-one onto trial config keys; `--set key=value` reaches every other key. The last line
on stdout is one JSON object with the final metrics, for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trials.config import SAM_MODES, SCALES, SUPERVISIONS, ConfigError, make_config
from trials.runtime.folders import check_output

FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--dataset", {"help": "source dataset: market1501, msmt17, veri, vehicleid (default market1501)"}),
    ("--data-dir", {"help": "folder holding the datasets in their original layouts (default ./data)"}),
    ("--target-dataset", {"help": "cross-domain target dataset, under the same --data-dir"}),
    ("--epochs", {"type": int, "help": "training epochs (default 350; smoke 8)"}),
    ("--height", {"type": int, "help": "input height (default 256; smoke 64)"}),
    ("--width", {"type": int, "help": "input width (default height/2 for persons, height for vehicles)"}),
    ("--ids-per-batch", {"type": int, "help": "P: identities per batch (default 16)"}),
    ("--instances", {"type": int, "help": "K: images per identity in a batch (default 4)"}),
    ("--lr", {"type": float, "help": "weight learning rate (default 0.065 retrain, 0.025 search)"}),
    ("--sam-mode", {"choices": SAM_MODES, "help": "spatial alignment module loss (retrain; default none)"}),
    ("--sam-ratio", {"type": float, "help": "weight of the SAM loss (default 2.0)"}),
    ("--pretrained", {"help": "weights to start from: ours or the authors' released layout"}),
    ("--seed", {"type": int, "help": "seed of data order, augmentation, splits and init (default 0)"}),
    ("--device", {"help": "auto (CUDA when present), cpu, cuda, cuda:N (default auto)"}),
    ("--workers", {"type": int, "help": "data loader processes (default: from the CPUs given to the trial)"}),
    ("--scale", {"choices": SCALES, "help": "full: the paper's recipe; smoke: tiny CPU run on synthetic data"}),
]
SEARCH_FLAGS = [("--supervision", {"choices": SUPERVISIONS, "help": "tcm (the paper) or classification"})]
RETRAIN_FLAGS = [("--genotype", {"help": "msmt, a compact genotype, a genotype JSON file, random or random:SEED"})]


def build_parser(kind: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m trials.{kind}",
        description=f"Run one {kind} trial standalone (the same function Ray Tune runs).",
    )
    for flag, options in FLAGS + (SEARCH_FLAGS if kind == "search" else RETRAIN_FLAGS):
        parser.add_argument(flag, **options)
    parser.add_argument("--out", help="folder for the checkpoint, metrics and outputs "
                        f"(default runs/trials/{kind}-TIMESTAMP)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other trial config key, e.g. --set eval_interval=5 (repeatable)")
    return parser


def parse_config(kind: str, argv: list[str] | None = None):
    """The trial's config; `cfg.out` is checked to be a writable folder before anything is trained."""
    args = build_parser(kind).parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k not in {"set", "resume"} and v is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        values[key.strip().replace("-", "_")] = value
    values.setdefault("out", str(Path("runs", "trials", f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}")))
    values["out"] = str(Path(values["out"]).resolve())
    if "data_dir" in values:
        values["data_dir"] = str(Path(values["data_dir"]).expanduser().resolve())
    cfg = make_config(kind, values)
    check_output(cfg.out, "--out")
    checkpoint = Path(cfg.out) / "checkpoint" / "state.pt"
    if checkpoint.exists() and not args.resume:
        raise ConfigError(f"--out {cfg.out} already holds a checkpoint; pass --resume to continue it, or "
                          "choose another --out (nothing is overwritten)")
    if args.resume and not checkpoint.exists():
        raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    return cfg


def finished_metrics(cfg) -> dict[str, Any] | None:
    """The recorded final metrics when the checkpoint in `cfg.out` has run every epoch, else None."""
    from trials.runtime.checkpoint import read_state

    state = read_state(Path(cfg.out) / "checkpoint")
    if state["epoch"] < cfg.epochs:
        return None
    recorded = Path(cfg.out, "metrics.json")
    return json.loads(recorded.read_text()) if recorded.exists() else {"epoch": state["epoch"]}


def check_before_training(cfg) -> None:
    """What a standalone trial checks before it trains, as the launch's driver does for a study: the device is
    there, and every image of every split it uses opens (remembered in OUT/image_check.json, so a resumed run
    opens only new files). A broken query image must not cost the whole run."""
    from trials.data.integrity import check_source_images
    from trials.runtime.device import resolve_device

    resolve_device(cfg.device)
    for name in filter(None, (cfg.dataset, cfg.target_dataset)):
        check_source_images(name, cfg.data_dir, Path(cfg.out) / "image_check.json")


def main(kind: str, run: Callable[..., dict[str, Any]], argv: list[str] | None = None) -> None:
    from trials.runtime.session import LocalSession

    argv = sys.argv[1:] if argv is None else argv
    cfg = None
    try:
        cfg = parse_config(kind, argv)
        done = finished_metrics(cfg) if "--resume" in argv else None
        if done is not None:  # nothing to continue: leave the results as they are
            print(f"the run in {cfg.out} is complete ({done.get('epoch')} of {cfg.epochs} epochs); its metrics are "
                  f"in {Path(cfg.out, 'metrics.json')}", file=sys.stderr)
            print(json.dumps({k: v for k, v in done.items() if not isinstance(v, list | dict)}), flush=True)
            return
        check_before_training(cfg)
        session = LocalSession(cfg.out)
        metrics = run(cfg, session)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if cfg is None:
            sys.exit(130)
        again = argv + ([] if "--out" in argv else ["--out", cfg.out]) + ([] if "--resume" in argv else ["--resume"])
        print(f"\ninterrupted; the last checkpoint is in {cfg.out}/checkpoint. Continue with:\n"
              f"  python -m trials.{kind} {' '.join(again)}", file=sys.stderr)
        sys.exit(130)
    final = {k: v for k, v in metrics.items() if not isinstance(v, list | dict)}
    Path(cfg.out, "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(final), flush=True)

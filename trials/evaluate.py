"""Evaluate a trained MSINet on the test split(s) of a dataset: `python -m trials.evaluate --weights PATH ...`.

Takes our checkpoints (the genotype comes from inside) or a file in the authors' released layout (give
`--genotype`, default `msmt`). Without `--weights` it scores the randomly initialised network: the
untrained baseline every trained number should be compared with. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

import spaces
from trials.config import ConfigError, make_config
from trials.data import DatasetError
from trials.data.splits import load_splits
from trials.evaluation.network_views import write_network_views
from trials.evaluation.rank_lists import NUM_QUERIES
from trials.evaluation.scoring import score_tests
from trials.runtime.device import loader_workers, resolve_device
from trials.runtime.rng import seed_everything


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="checkpoint: ours (model.pt) or the authors' {'state_dict': ...}; "
                        "omit to score an untrained network")
    parser.add_argument("--dataset", required=True, help="market1501, msmt17, veri or vehicleid")
    parser.add_argument("--data-dir", required=True, help="folder holding the datasets in their layouts")
    parser.add_argument("--target-dataset", help="also score this dataset (cross-domain), same --data-dir")
    parser.add_argument("--genotype", help="genotype when the weights file holds none (default msmt)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the distances")
    parser.add_argument("--test-neck", action="store_true", help="use the BN-neck features (cross-domain)")
    parser.add_argument("--height", type=int, help="input height (default 256)")
    parser.add_argument("--width", type=int, help="input width (default 128 persons, 256 vehicles)")
    parser.add_argument("--vehicleid-test-size", type=int, default=800, help="800, 1600 or 2400")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--workers", type=int, help="data loader processes")
    parser.add_argument("--seed", type=int, default=0, help="seed (random init, VehicleID gallery draws)")
    parser.add_argument("--visrank", type=int, default=0, metavar="K",
                        help="also draw rank_lists.png (each query's top-K gallery images) and activation_maps.png")
    parser.add_argument("--visrank-queries", type=int, default=NUM_QUERIES, metavar="N",
                        help=f"queries drawn: N-1 seeded ones (the same for every network) and the worst by AP "
                             f"(default {NUM_QUERIES})")
    parser.add_argument("--vis-dir", help="folder for the pictures (default: visrank/ beside --weights, "
                        "else ./visrank)")
    return parser


def evaluate_weights(args: argparse.Namespace) -> dict[str, Any]:
    cfg = make_config("retrain", {
        "dataset": args.dataset, "data_dir": str(Path(args.data_dir).expanduser().resolve()),
        "target_dataset": args.target_dataset, "height": args.height, "width": args.width,
        "rerank": args.rerank, "device": args.device, "workers": args.workers, "seed": args.seed,
        "vehicleid_test_size": args.vehicleid_test_size, "val_fraction": 0.0,
    })
    if args.visrank < 0 or args.visrank_queries < 1:
        raise ValueError(f"--visrank {args.visrank} / --visrank-queries {args.visrank_queries}: expected K >= 1 "
                         "gallery images (0: no pictures) and N >= 1 queries")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model, report = load_model(args.weights, args.genotype, cfg.vehicle, args.test_neck)
    if report is not None:
        print(report, file=sys.stderr)
    model.to(device)
    splits = load_splits(cfg)
    metrics = score_tests(model, splits, cfg, device, loader_workers(cfg.workers))
    if args.visrank:
        views = write_network_views(model, splits.source, cfg.image_size, device, vis_dir(args), args.visrank,
                                    args.visrank_queries, loader_workers(cfg.workers))
        metrics.update({name.replace(".", "_"): str(path) for name, path in views.items()})
    cost = spaces.model_cost(model, (3, *cfg.image_size))
    return {**metrics, "genotype": str(model.genotype), "params": cost["params_no_classifier"],
            "macs": cost["macs"], "weights": str(args.weights) if args.weights else None}


def vis_dir(args: argparse.Namespace) -> Path:
    """Where --visrank writes: --vis-dir, else visrank/ beside the weights, else ./visrank."""
    if args.vis_dir:
        return Path(args.vis_dir).expanduser()
    return (Path(args.weights).parent if args.weights else Path.cwd()) / "visrank"


def load_model(weights: str | None, genotype: str | None, vehicle: bool, test_neck: bool):
    """Our checkpoints rebuild themselves; other files need a genotype and get a load report."""
    if weights is None:
        return spaces.build_msinet(genotype or "msmt", 1, vehicle=vehicle, test_neck=test_neck), None
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--weights {weights}: no such file")
    contents = torch.load(weights, map_location="cpu", weights_only=True)
    state = spaces.msinet.extract_state_dict(contents)
    meta = contents if isinstance(contents, dict) else {}
    chosen = genotype or meta.get("genotype") or "msmt"
    classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1
    sam_mode = meta.get("sam_mode") or ("pos_neg" if any(k.startswith("align_module.") for k in state)
                                        else "none")
    model = spaces.build_msinet(chosen, classes, sam_mode=sam_mode, vehicle=vehicle, test_neck=test_neck)
    return model, spaces.load_weights(model, weights)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        metrics = evaluate_weights(args)
    except (ConfigError, DatasetError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}), flush=True)


if __name__ == "__main__":
    main()

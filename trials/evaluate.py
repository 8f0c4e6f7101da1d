"""Evaluate a trained MSINet on the test split(s) of a dataset: `python -m trials.evaluate --weights PATH ...`.

Takes our checkpoints (the genotype comes from inside) or a file in the authors' released layout (give
`--genotype`, default `msmt`). Without `--weights` it scores the randomly initialised network: the
untrained baseline every trained number should be compared with. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

import spaces
from trials.config import ConfigError, TrialConfig, make_config
from trials.data import DatasetError
from trials.data.datasets import VEHICLEID_TEST_SIZES
from trials.data.splits import load_splits
from trials.deploy.weights import is_mlflow_uri, local_weights
from trials.evaluation.network_views import write_network_views
from trials.evaluation.rank_lists import NUM_QUERIES
from trials.evaluation.scoring import score_tests
from trials.runtime.device import loader_workers, resolve_device
from trials.runtime.rng import seed_everything


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="checkpoint: ours (model.pt) or the authors' {'state_dict': ...}, a "
                        "file or in MLflow (models:/msinet-STUDY@champion, runs:/RUN_ID/checkpoint/model.pt); "
                        "omit to score an untrained network")
    parser.add_argument("--tracking-uri", help="MLflow store or server of a models:/ or runs:/ --weights "
                        "(default: MLFLOW_TRACKING_URI)")
    parser.add_argument("--dataset", required=True, help="market1501, msmt17, veri, vehicleid, list:PATH (CSV "
                        "list files) or module:function; a+b scores each source (source/NAME/...)")
    parser.add_argument("--data-dir", required=True, help="folder holding the datasets in their layouts")
    parser.add_argument("--target-dataset", help="also score this dataset (cross-domain), same --data-dir")
    parser.add_argument("--genotype", help="genotype when the weights file holds none (default msmt)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking of the distances")
    parser.add_argument("--test-neck", action="store_true", help="use the BN-neck features (cross-domain)")
    parser.add_argument("--height", type=int, help="input height (default: the size the weights were trained at, "
                        "else 256)")
    parser.add_argument("--width", type=int, help="input width (default: as trained, else 128 persons, 256 vehicles)")
    parser.add_argument("--vehicleid-test-size", default="2400", choices=["800", "1600", "2400", "all"],
                        help="VehicleID test list (default 2400, as the authors); all: score the three lists, "
                        "as papers report them, under PREFIX/testN/...")
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
    weights = read_weights(args.weights) if args.weights else None  # read once, used for size and network
    if args.height is None and args.width is None:  # score at the size the weights were trained at
        args.height, args.width = trained_size(weights[1] if weights else {})
    cfg = make_config("retrain", {
        "dataset": args.dataset, "data_dir": str(Path(args.data_dir).expanduser().resolve()),
        "target_dataset": args.target_dataset, "height": args.height, "width": args.width,
        "rerank": args.rerank, "device": args.device, "workers": args.workers, "seed": args.seed,
        "vehicleid_test_size": 2400 if args.vehicleid_test_size == "all" else args.vehicleid_test_size,
        "val_fraction": 0.0,
    })
    if args.visrank < 0 or args.visrank_queries < 1:
        raise ValueError(f"--visrank {args.visrank} / --visrank-queries {args.visrank_queries}: expected K >= 1 "
                         "gallery images (0: no pictures) and N >= 1 queries")
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device, "--device")
    model, report = load_model(weights, args.genotype, cfg.vehicle, args.test_neck)
    if report is not None:
        print(report, file=sys.stderr)
    model.to(device)
    metrics = score_test_lists(model, cfg, device, args.vehicleid_test_size == "all")
    if args.visrank:
        views = write_network_views(model, load_splits(cfg).source, cfg.image_size, device, vis_dir(args),
                                    args.visrank, args.visrank_queries, loader_workers(cfg.workers))
        metrics.update({name.replace(".", "_"): str(path) for name, path in views.items()})
    cost = spaces.model_cost(model, (3, *cfg.image_size))
    return {**metrics, "genotype": str(model.genotype), "params": cost["params_no_classifier"],
            "macs": cost["macs"], "weights": str(args.weights) if args.weights else None}


def score_test_lists(model, cfg: TrialConfig, device: torch.device, every_list: bool) -> dict[str, Any]:
    """The test splits; with `every_list`, VehicleID's three test lists, each under `PREFIX/testN/...`."""
    workers = loader_workers(cfg.workers)
    if not every_list or "vehicleid" not in (cfg.dataset, cfg.target_dataset):
        return score_tests(model, load_splits(cfg), cfg, device, workers)
    metrics: dict[str, Any] = {}
    for size in VEHICLEID_TEST_SIZES:
        sized = dataclasses.replace(cfg, vehicleid_test_size=size)
        for key, value in score_tests(model, load_splits(sized), sized, device, workers).items():
            prefix, name = key.split("/", 1)
            dataset = cfg.dataset if prefix == "source" else cfg.target_dataset
            metrics[f"{prefix}/test{size}/{name}" if dataset == "vehicleid" else key] = value
    return metrics


def read_weights(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, what the file says about the network): our `model.pt`, a retrain's `checkpoint/state.pt`
    (it holds the model too), or the authors' `{'state_dict': ...}`. Unreadable files name themselves."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--weights {path}: no such file")
    try:
        try:
            contents = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            if file.name != "state.pt":
                raise
            contents = torch.load(file, map_location="cpu", weights_only=False)  # our own trial state
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"--weights {path}: not a readable PyTorch file ({str(error).splitlines()[0]}); expected "
                         "the model.pt of a retrain (RUN/checkpoint/model.pt) or the authors' weights file") from None
    if isinstance(contents, dict) and "alpha_history" in contents:
        raise ValueError(f"--weights {path}: this is a search trial's state (a supernet); retrain its genotype "
                         f"first: python -m trials.retrain --genotype {file.parent / 'genotype.json'} ...")
    if isinstance(contents, dict) and "model" in contents and "config" in contents:  # a retrain's state.pt
        from trials.retrain import resolve_retrain_genotype

        config = contents["config"]
        genotype = resolve_retrain_genotype(config["genotype"], config["seed"])
        return spaces.msinet.extract_state_dict(contents["model"]), {
            "genotype": str(genotype), "sam_mode": config.get("sam_mode", "none"), "config": config}
    try:
        state = spaces.msinet.extract_state_dict(contents)
    except ValueError as error:
        raise ValueError(f"--weights {path}: {error}") from None
    return state, contents if isinstance(contents, dict) else {}


def vis_dir(args: argparse.Namespace) -> Path:
    """Where --visrank writes: --vis-dir, else visrank/ beside the weights, else ./visrank."""
    if args.vis_dir:
        return Path(args.vis_dir).expanduser()
    return (Path(args.weights).parent if args.weights else Path.cwd()) / "visrank"


def load_model(weights: tuple[dict[str, torch.Tensor], dict[str, Any]] | None, genotype: str | None, vehicle: bool,
               test_neck: bool):
    """The network of `read_weights`' (state, meta): ours rebuild themselves; other files need a genotype and
    get a load report. None: an untrained network."""
    if weights is None:
        return spaces.build_msinet(genotype or "msmt", 1, vehicle=vehicle, test_neck=test_neck), None
    state, meta = weights
    chosen = genotype or meta.get("genotype") or "msmt"
    classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1
    sam_mode = meta.get("sam_mode") or ("pos_neg" if any(k.startswith("align_module.") for k in state)
                                        else "none")
    model = spaces.build_msinet(chosen, classes, sam_mode=sam_mode, vehicle=vehicle, test_neck=test_neck)
    return model, spaces.load_weights(model, state)


def trained_size(meta: dict[str, Any]) -> tuple[int | None, int | None]:
    """The input size the weights were trained at, when the file records it (our checkpoints do)."""
    config = meta.get("config")
    if not isinstance(config, dict) or "height" not in config:
        return None, None
    return make_config("retrain", {k: config[k] for k in ("dataset", "height", "width") if k in config}).image_size


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if is_mlflow_uri(args.weights) and not args.vis_dir:
        args.vis_dir = "visrank"  # not beside a downloaded file that is gone after the command
    try:
        with local_weights(args.weights, args.tracking_uri) as path:
            metrics = evaluate_weights(argparse.Namespace(**{**vars(args), "weights": path}))
        metrics["weights"] = args.weights
    except (ConfigError, DatasetError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}), flush=True)


if __name__ == "__main__":
    main()

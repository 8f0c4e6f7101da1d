"""Trials per GPU: retrain and search throughput per data path, and retrain trials packed on one GPU.

One invocation measures, side by side on the same device:

* per trial, at full size (256x128, batch 16x4, 751 classes): the PIL loader path in fp32 (the baseline),
  the device-resident path (`data_path: resident`), + `torch.compile`, + bf16 autocast; images/s, peak MiB;
* packing: 1, 2, 4 and 8 retrain trials as concurrent processes on one GPU (what fractional-GPU Ray trials
  are), each limited to 2 CPU threads, with the best per-trial variant; aggregate images/s.

It imports only `spaces`, `trials` and torch (a lent GPU machine has no Ray, MLflow or Optuna). The JSON
(`--json`) holds `retrain_images_per_s` and `search_images_per_s` (by variant), `packed_retrain_images_per_s`
(by count), `peak_mib`, `device`, `torch`, the ratios and the environment; it is rewritten after every
section. `--device cpu` with small sizes runs in seconds, to keep the script working.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_timing import checked_device, environment, free, peak_mib, rates, sync, timed, widen  # noqa: E402, I001

import spaces  # noqa: E402
from trials.config import TrialConfig, make_config  # noqa: E402
from trials.data import synthesize  # noqa: E402
from trials.data.batches import training_batches  # noqa: E402
from trials.data.loaders import BatchStream  # noqa: E402
from trials.data.splits import load_splits  # noqa: E402
from trials.retrain import train_epoch  # noqa: E402
from trials.runtime.device import compiled, configure_backends, resolve_device  # noqa: E402
from trials.search import search_epoch  # noqa: E402

VARIANTS = {  # name -> trial config values
    "pil_fp32": {"data_path": "loader"},
    "device": {"data_path": "resident"},
    "device_compiled": {"data_path": "resident", "compile": True},
    "device_compiled_bf16": {"data_path": "resident", "compile": True, "amp": True},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--height", type=int, default=256, help="image height (width is half)")
    p.add_argument("--classes", type=int, default=751, help="identities of the training head")
    p.add_argument("--ids", type=int, default=60, help="synthetic identities rendered (widened to --classes)")
    p.add_argument("--ids-per-batch", type=int, default=16)
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--iters", type=int, default=30, help="timed iterations per repeat")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first (compilation happens here)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=8, help="loader processes of the PIL baseline")
    p.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4, 8], help="concurrent retrain processes")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--data-dir", help="where to synthesize (reused when it holds the same data)")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one packed process
    return p.parse_args(argv)


def trial_config(args: argparse.Namespace, root: str, kind: str, **values: Any) -> TrialConfig:
    base = {"height": args.height, "ids_per_batch": args.ids_per_batch, "instances": args.instances,
            "device": args.device, "workers": args.workers, "data_dir": root, "seed": 0, "val_fraction": 0.0,
            "resident_cache": str(Path(root) / "resident-cache")}
    return make_config(kind, {**base, **values})


def retrain_rate(args: argparse.Namespace, cfg: TrialConfig, device: torch.device) -> dict[str, Any]:
    """images/s of `trials.retrain.train_epoch` fed by the variant's data path."""
    splits = load_splits(cfg)
    samples = widen(splits.train, max(1, -(-args.classes // splits.num_classes)))
    started = time.perf_counter()
    batches = BatchStream(training_batches(samples, cfg, 0, cfg.workers or 0, device))
    ready = time.perf_counter() - started
    torch.manual_seed(0)
    model = spaces.build_msinet("msmt", len({s.pid for s in samples})).to(device)
    step_model = compiled(model, cfg.compile, cfg.compile_backend, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr * cfg.warmup_factor, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)

    def run(n: int) -> None:
        train_epoch(step_model, itertools.islice(batches, n), optimizer, cfg, device, 0)

    compile_started = time.perf_counter()
    run(1)
    sync(device)
    first = time.perf_counter() - compile_started
    result = rates(timed(run, args, device), args, cfg.ids_per_batch * cfg.instances)
    return {**result, "peak_mib": peak_mib(device), "data_ready_s": ready, "first_step_s": first}


def search_rate(args: argparse.Namespace, cfg: TrialConfig, device: torch.device) -> dict[str, Any]:
    """Weight-batch images/s of `trials.search.search_epoch` (architecture + weight step per iteration)."""
    splits = load_splits(cfg)
    samples = widen(splits.train, max(1, -(-args.classes // splits.num_classes)))
    train_side, valid_side = ([type(samples[0])(*s) for s in side] for side in spaces.tcm_split(samples))
    train = training_batches(train_side, cfg, 0, cfg.workers or 0, device)
    valid = BatchStream(training_batches(valid_side, cfg, 1, cfg.workers or 0, device))
    batches = BatchStream(train)
    torch.manual_seed(0)
    model = spaces.Supernet().to(device)
    step_model = compiled(model, cfg.compile, cfg.compile_backend, device)
    memories = [spaces.PrototypeMemory(spaces.num_ids(side)).to(device) for side in (train_side, valid_side)]
    optimizer = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr * cfg.warmup_factor, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    architect = spaces.Architect(step_model, memories[1], lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay)

    def run(n: int) -> None:
        search_epoch(step_model, itertools.islice(batches, n), valid, architect, memories[0], optimizer, cfg,
                     device, 1)

    result = rates(timed(run, args, device), args, cfg.ids_per_batch * cfg.instances)
    return {**result, "peak_mib": peak_mib(device)}


def packed(args: argparse.Namespace, root: str, variant: str, count: int) -> dict[str, Any]:
    """`count` retrain processes at once on the device, 2 CPU threads each; their summed images/s."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    go = Path(tempfile.mkdtemp(prefix="msinet-pack-")) / "go"
    command = [sys.executable, __file__, "--worker", json.dumps({"variant": variant, "root": root, "go": str(go)}),
               "--device", args.device, "--height", str(args.height), "--classes", str(args.classes),
               "--ids-per-batch", str(args.ids_per_batch), "--instances", str(args.instances),
               "--iters", str(args.iters), "--warmup", str(args.warmup), "--repeats", "1", "--workers", "2"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(count)]
    deadline = time.monotonic() + 600
    while len(list(go.parent.glob("ready-*"))) < count and time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            break
        time.sleep(0.2)
    go.write_text("")  # everyone starts timing together, after its own warm-up and compilation
    outputs = [w.communicate(timeout=900) for w in workers]
    results = []
    for worker, (out, err) in zip(workers, outputs, strict=True):
        if worker.returncode != 0:
            raise RuntimeError(f"packed worker failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"aggregate_images_per_s": sum(r["images_per_s"] for r in results), "per_trial": results,
            "peak_mib_per_trial": [r["peak_mib"] for r in results]}


def worker(args: argparse.Namespace) -> int:
    """One packed retrain trial: warm up, say so, wait for the go, then time."""
    job = json.loads(args.worker)
    torch.set_num_threads(2)
    device = resolve_device(args.device)
    configure_backends(device)
    cfg = trial_config(args, job["root"], "retrain", **VARIANTS[job["variant"]])
    splits = load_splits(cfg)
    samples = widen(splits.train, max(1, -(-args.classes // splits.num_classes)))
    batches = BatchStream(training_batches(samples, cfg, os.getpid(), cfg.workers or 0, device))
    model = spaces.build_msinet("msmt", len({s.pid for s in samples})).to(device)
    step_model = compiled(model, cfg.compile, cfg.compile_backend, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    train_epoch(step_model, itertools.islice(batches, args.warmup), optimizer, cfg, device, 0)
    sync(device)
    go = Path(job["go"])
    (go.parent / f"ready-{os.getpid()}").write_text("")
    while not go.exists():
        time.sleep(0.05)
    started = time.perf_counter()
    train_epoch(step_model, itertools.islice(batches, args.iters), optimizer, cfg, device, 0)
    sync(device)
    seconds = time.perf_counter() - started
    print(json.dumps({"images_per_s": args.iters * cfg.ids_per_batch * cfg.instances / seconds,
                      "peak_mib": peak_mib(device)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    device = checked_device(args, files=("json",), folders=("data_dir",))
    configure_backends(device)
    root = args.data_dir or tempfile.mkdtemp(prefix="msinet-throughput-")
    synthesize("market1501", root, ids=args.ids, seed=0, image_size=(args.height, args.height // 2))
    out: dict[str, Any] = {"device": environment(device).get("name"), "torch": torch.__version__,
                           "environment": environment(device), "args": vars(args), "retrain_images_per_s": {},
                           "search_images_per_s": {}, "packed_retrain_images_per_s": {}, "peak_mib": {},
                           "details": {}}

    def save() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))

    for kind, measure in (("retrain", retrain_rate), ("search", search_rate)):
        for variant in args.variants:
            free(device)
            cfg = trial_config(args, root, kind, **VARIANTS[variant])
            try:
                result = measure(args, cfg, device)
            except Exception as error:  # noqa: BLE001 - a variant that fails is reported, the rest still run
                out["details"][f"{kind}/{variant}"] = {"error": f"{type(error).__name__}: {error}"}
                print(f"{kind} {variant}: FAILED {type(error).__name__}: {error}", flush=True)
                save()
                continue
            out[f"{kind}_images_per_s"][variant] = result["images_per_s"]
            out["peak_mib"][f"{kind}/{variant}"] = result["peak_mib"]
            out["details"][f"{kind}/{variant}"] = result
            base = out[f"{kind}_images_per_s"].get("pil_fp32")
            ratio = f" (x{result['images_per_s'] / base:.2f} of pil_fp32)" if base else ""
            print(f"{kind} {variant}: {result['images_per_s']:.0f} images/s{ratio}, peak "
                  f"{result['peak_mib'] or 0:.0f} MiB", flush=True)
            save()
    measured = out["retrain_images_per_s"]
    best = max((v for v in measured if v != "pil_fp32"), key=measured.get, default="pil_fp32")
    out["packed_variant"] = best
    for count in args.packing:
        free(device)
        result = packed(args, root, best, count)
        out["packed_retrain_images_per_s"][str(count)] = result["aggregate_images_per_s"]
        out["details"][f"packed/{count}"] = result
        one = out["packed_retrain_images_per_s"].get("1")
        print(f"packed x{count} ({best}, 2 CPU threads each): {result['aggregate_images_per_s']:.0f} images/s"
              + (f" (x{result['aggregate_images_per_s'] / one:.2f} of one)" if one else ""), flush=True)
        save()
    base = measured.get("pil_fp32")
    if base and "4" in out["packed_retrain_images_per_s"]:
        out["ratios"] = {"packed4_vs_one_pil_fp32": out["packed_retrain_images_per_s"]["4"] / base,
                         **{f"retrain_{v}_vs_pil_fp32": r / base for v, r in measured.items()}}
        print(f"four packed trials vs one baseline trial: x{out['ratios']['packed4_vs_one_pil_fp32']:.2f}")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Trials per GPU: retrain and search throughput per data path, and retrain trials packed on one GPU.

One invocation measures, side by side on the same device:

* per trial, at full size (256x128, batch 16x4, 751 classes): the PIL loader path in fp32 (the baseline),
  the device-resident path (`data_path: resident`), + `torch.compile`, + bf16 autocast; images/s, peak MiB;
* packing: 1, 2, 4 and 8 retrain trials as concurrent processes on one GPU (what fractional-GPU Ray trials
  are), each limited to 2 CPU threads, with the best per-trial variant; aggregate images/s = all images /
  (last end - first start), so a trial that finishes early and leaves the GPU to the others is not counted
  as if it had run beside them all along. `--mps` also packs them under NVIDIA MPS (our own control daemon,
  started and stopped by PID) where its control program is installed.

The PIL baseline gets the loader processes a study trial gets (`--trial-cpus`, the shipped studies' `cpu`
per GPU trial, minus one, as `trials.runtime.device.loader_workers` decides), unless `--workers` says.

It imports only `spaces`, `trials` and torch (a lent GPU machine has no Ray, MLflow or Optuna). The JSON
(`--json`) holds `retrain_images_per_s` and `search_images_per_s` (by variant), `packed_retrain_images_per_s`
(by count; `packed_mps_retrain_images_per_s` with `--mps`), `peak_mib`, `device`, `torch`, `runs` (what each
variant really ran on this device), the ratios and the environment; it is rewritten after every section.
`--device cpu` with small sizes runs in seconds, to keep the script working.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpu_timing import checked_device, environment, free, peak_mib, rates, runs, sync, timed, widen  # noqa: E402, I001

import spaces  # noqa: E402
from trials.config import TrialConfig, make_config  # noqa: E402
from trials.data import synthesize  # noqa: E402
from trials.data.batches import training_batches  # noqa: E402
from trials.data.loaders import BatchStream  # noqa: E402
from trials.data.splits import load_splits  # noqa: E402
from trials.retrain import train_epoch  # noqa: E402
from trials.runtime.device import compiled, configure_backends, resolve_device, workers_for  # noqa: E402
from trials.search import search_epoch  # noqa: E402

VARIANTS = {  # name -> trial config values
    "pil_fp32": {"data_path": "loader"},
    "device": {"data_path": "resident"},
    "device_compiled": {"data_path": "resident", "compile": True},
    "device_compiled_bf16": {"data_path": "resident", "compile": True, "amp": True},
}
STUDY_TRIAL_CPUS = 2  # `resources: {cpu: 2, gpu: 0.5}` of the shipped studies' GPU trials


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
    p.add_argument("--workers", type=int, help="loader processes of the PIL baseline (default: what a study "
                   "trial with --trial-cpus CPUs gets)")
    p.add_argument("--trial-cpus", type=int, default=STUDY_TRIAL_CPUS, help="CPUs of one study trial, which "
                   f"decide the PIL baseline's loader processes (default {STUDY_TRIAL_CPUS}, the shipped studies')")
    p.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4, 8], help="concurrent retrain processes")
    p.add_argument("--mps", action="store_true", help="also pack the processes under NVIDIA MPS, where "
                   "nvidia-cuda-mps-control is installed (CUDA only; otherwise the JSON says why not)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--data-dir", help="where to synthesize (reused when it holds the same data)")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one packed process
    args = p.parse_args(argv)
    if args.workers is None:
        args.workers = workers_for(args.trial_cpus)
    return args


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


def packed(args: argparse.Namespace, root: str, variant: str, count: int,
           env: dict[str, str] | None = None) -> dict[str, Any]:
    """`count` retrain processes at once on the device, 2 CPU threads each; all their images over the span
    from the first start to the last end (`env`: e.g. the MPS daemon's pipe folder)."""
    env = {**(env or os.environ), "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    folder = Path(tempfile.mkdtemp(prefix="msinet-pack-"))
    command = [sys.executable, __file__, "--worker", json.dumps({"variant": variant, "root": root,
                                                                   "go": str(folder / "go")}),
               "--device", args.device, "--height", str(args.height), "--classes", str(args.classes),
               "--ids-per-batch", str(args.ids_per_batch), "--instances", str(args.instances),
               "--iters", str(args.iters), "--warmup", str(args.warmup), "--repeats", "1", "--workers", "2"]
    results = run_together([command] * count, env, folder)
    return {"aggregate_images_per_s": aggregate_rate(results), "per_trial": results,
            "sum_of_own_rates": sum(r["images_per_s"] for r in results),
            "peak_mib_per_trial": [r["peak_mib"] for r in results], "logs": str(folder)}


def aggregate_rate(results: list[dict[str, Any]]) -> float:
    """Images of all processes over the span from the first start to the last end. Summing each one's own
    rate overstates it: a process that finishes early leaves the device to the rest, which then run faster."""
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return sum(r["images"] for r in results) / span


def run_together(commands: list[list[str]], env: dict[str, str], folder: Path, ready_timeout: float = 600,
                 run_timeout: float = 900) -> list[dict[str, Any]]:
    """Start `commands` at once; each warms up, writes `folder/ready-PID`, waits for `folder/go` and prints
    one JSON line last. Their stdout and stderr go to files in `folder`, never to pipes: a pipe nobody reads
    while waiting blocks a chatty child (compile logs) until the deadline. A failed process raises with the
    end of its log."""
    logs = [(folder / f"worker-{i}.out", folder / f"worker-{i}.err") for i in range(len(commands))]
    workers = []
    for command, (out, err) in zip(commands, logs, strict=True):
        with open(out, "w") as stdout, open(err, "w") as stderr:
            workers.append(subprocess.Popen(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                            text=True, env=env))
    try:
        deadline = time.monotonic() + ready_timeout
        while len(list(folder.glob("ready-*"))) < len(workers) and time.monotonic() < deadline:
            if any(w.poll() is not None for w in workers):
                break
            time.sleep(0.2)
        (folder / "go").write_text("")  # everyone starts timing together, after its own warm-up and compilation
        for worker in workers:
            worker.wait(timeout=run_timeout)
    finally:
        for worker in workers:  # only on a timeout or an interrupt: our own children, by PID
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    results = []
    for worker, (out, err) in zip(workers, logs, strict=True):
        lines = out.read_text().strip().splitlines()
        if worker.returncode != 0 or not lines:
            raise RuntimeError(f"packed process {worker.pid} failed (exit {worker.returncode}): "
                               f"{err.read_text()[-2000:]}")
        results.append(json.loads(lines[-1]))
    return results


@contextlib.contextmanager
def mps_daemon(device: torch.device, folder: Path) -> Iterator[tuple[dict[str, str] | None, str]]:
    """An NVIDIA MPS control daemon of our own: run in the foreground as our child (so its PID is known),
    its pipe and log folders under `folder`, asked to quit and then waited for (killed by PID if it will
    not). Yields (environment for the packed processes, "") or (None, why MPS is not available here)."""
    control = shutil.which("nvidia-cuda-mps-control")
    if device.type != "cuda" or control is None:
        yield None, ("MPS serves CUDA devices only" if device.type != "cuda"
                     else "nvidia-cuda-mps-control is not installed")
        return
    pipe, log = folder / "mps-pipe", folder / "mps-log"
    pipe.mkdir(parents=True, exist_ok=True)
    log.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(log)}
    with open(log / "daemon.out", "w") as out:
        daemon = subprocess.Popen([control, "-f"], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (pipe / "control").exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if daemon.poll() is not None or not (pipe / "control").exists():
            tail = (log / "daemon.out").read_text()[-500:]
            yield None, f"the MPS control daemon did not start (exit {daemon.poll()}): {tail}"
        else:
            yield env, ""
    finally:
        if daemon.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run([control], input="quit\n", env=env, text=True, capture_output=True, timeout=30)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


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
    start = time.time()  # wall clock: the span is measured across processes
    train_epoch(step_model, itertools.islice(batches, args.iters), optimizer, cfg, device, 0)
    sync(device)
    end = time.time()
    images = args.iters * cfg.ids_per_batch * cfg.instances
    print(json.dumps({"images": images, "start": start, "end": end, "images_per_s": images / (end - start),
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
                           "runs": {}, "details": {}}

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
            loading = f" ({cfg.workers} loader processes)" if cfg.data_path == "loader" else ""
            out["runs"][f"{kind}/{variant}"] = f"data {cfg.data_path}{loading}, {runs(cfg, device)}"
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

    def pack(key: str, env: dict[str, str] | None) -> None:
        for count in args.packing:
            free(device)
            result = packed(args, root, best, count, env)
            out.setdefault(key, {})[str(count)] = result["aggregate_images_per_s"]
            out["details"][f"{key.removesuffix('_retrain_images_per_s')}/{count}"] = result
            one = out[key].get("1")
            print(f"packed x{count} ({best}, 2 CPU threads each{', under MPS' if env else ''}): "
                  f"{result['aggregate_images_per_s']:.0f} images/s over the whole span"
                  + (f" (x{result['aggregate_images_per_s'] / one:.2f} of one)" if one else "")
                  + f"; their own rates summed: {result['sum_of_own_rates']:.0f}", flush=True)
            save()

    pack("packed_retrain_images_per_s", None)
    if args.mps:  # after the plain packing: no MPS server is up while processes run without it
        with mps_daemon(device, Path(tempfile.mkdtemp(prefix="msinet-mps-"))) as (env, why):
            out["mps"] = {"available": env is not None, "reason": why}
            print(f"MPS: {'our own control daemon is up' if env is not None else 'not used: ' + why}", flush=True)
            save()
            if env is not None:
                pack("packed_mps_retrain_images_per_s", env)
    base = measured.get("pil_fp32")
    if base and "4" in out["packed_retrain_images_per_s"]:
        out["ratios"] = {"packed4_vs_one_pil_fp32": out["packed_retrain_images_per_s"]["4"] / base,
                         **{f"retrain_{v}_vs_pil_fp32": r / base for v, r in measured.items()}}
        print(f"four packed trials vs one baseline trial: x{out['ratios']['packed4_vs_one_pil_fp32']:.2f}")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

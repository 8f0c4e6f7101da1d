"""Everything to check on a GPU, in one command: at most 8 minutes on an H100/H200 with 16 CPUs and only torch,
torchvision, numpy and PIL installed.

    python3 benchmarks/device_check.py [--out DIR]     # CUDA when present; `--device cpu`: small sizes, seconds

Sections, in this order, each added to DIR/device_check.json when it ends (DIR: `--out`, default
benchmarks/results/device_check_<device>_<date>/); everything printed also goes to DIR/device_check.log:

1. `cuda_tests`: `pytest -m cuda` on the test files that hold CUDA-only tests, when pytest is installed
   (without CUDA they are collected and skipped). Without pytest, sections 2 and 3 are those checks.
2. `compiled_vs_eager`: the retrain and the search step (`train_epoch`, `search_epoch`) eager and compiled as
   `compile: true` compiles them (inductor, CUDA graphs through mode="reduce-overhead" on CUDA), from the same
   weights on the same batches for `--iters` iterations: the mean loss terms must agree to LOSS_RTOL, and the
   weights (search: also alpha and both memories) to UPDATE_RTOL of how far the iterations moved them. An
   error (a CUDA-graph one included) fails the section; CUDA-graph skips are counted.
3. `sync_free`: `torch.cuda.set_sync_debug_mode("error")` around the last 10 iterations of each of those runs:
   a host synchronisation raises, and the section records where.
4. `bf16_vs_fp32`: one short retrain on a small synthetic set generated into a temporary folder, fp32 and bf16
   autocast, same data, seed and epochs: source-test and val mAP after training.
5. `throughput`: benchmarks/gpu_throughput.py by its command line, cut at what is left of `--budget`; its
   JSON (DIR/throughput.json) is rewritten after each of its sections, so a cut run keeps what it measured.

Exit status 0 when sections 1-3 pass, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpu_timing import environment, pk_labels  # noqa: E402, I001

import spaces  # noqa: E402
from trials.config import make_config  # noqa: E402
from trials.data import synthesize  # noqa: E402
from trials.data.batches import training_batches  # noqa: E402
from trials.data.splits import load_splits  # noqa: E402
from trials.evaluation.scoring import refresh_validation, score_tests  # noqa: E402
from trials.retrain import train_epoch  # noqa: E402
from trials.runtime.device import configure_backends, resolve_device  # noqa: E402
from trials.runtime.schedules import warmup_multistep  # noqa: E402
from trials.search import search_epoch, side_loss  # noqa: E402

# Generated kernels (and TF32, reordered sums) differ from the library's in the last bits; over the iterations
# the training amplifies that, yet it stays far below what a lost or doubled gradient does (a change of the
# whole update, ratio ~1).
LOSS_RTOL = 5e-3
UPDATE_RTOL = 5e-2
SYNC_CHECKED = 10  # last iterations of each run under set_sync_debug_mode("error")
SIZES = {  # image height, P, K, retrain classes, search ids per side
    "cuda": {"height": 256, "ids_per_batch": 16, "instances": 4, "classes": 751, "search_ids": (60, 80)},
    "cpu": {"height": 32, "ids_per_batch": 4, "instances": 2, "classes": 8, "search_ids": (6, 8)},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    p.add_argument("--out", help="folder for device_check.json and .log (default benchmarks/results/"
                                 "device_check_<device>_<date>/)")
    p.add_argument("--budget", type=float, default=480, help="seconds in all; the throughput section gets the rest")
    p.add_argument("--iters", type=int, help="iterations of each step run (default 20 on CUDA, 12 on the CPU)")
    p.add_argument("--compile-backend", help="default inductor on CUDA; eager on the CPU (traces whole, "
                                             "generates nothing: inductor on a CPU takes minutes)")
    p.add_argument("--epochs", type=int, help="bf16-vs-fp32 training epochs (default 40 on CUDA, 1 on the CPU)")
    return p.parse_args(argv)


class Log:
    """Prints to the terminal and to the log file; `json` rewrites the JSON file."""

    def __init__(self, out: Path):
        self.out = out
        self.file = open(out / "device_check.log", "a")  # noqa: SIM115 - kept open for the whole run

    def __call__(self, message: str) -> None:
        print(message, flush=True)
        self.file.write(message + "\n")
        self.file.flush()

    def json(self, report: dict[str, Any]) -> None:
        (self.out / "device_check.json").write_text(json.dumps(report, indent=2, default=str))


def device_slug(device: torch.device) -> str:
    """'NVIDIA H200' -> 'h200'; 'cpu' -> 'cpu'."""
    if device.type != "cuda":
        return "cpu"
    words = [w for w in torch.cuda.get_device_name(device).lower().split() if w not in ("nvidia", "tesla")]
    return "".join(c for c in (words[0] if words else "cuda") if c.isalnum() or c == "-")


# ---------------------------------------------------------------- 1. the suite's CUDA-only tests


def cuda_tests(log: Log, seconds: float) -> dict[str, Any]:
    """`pytest -m cuda` on the files that mark tests `cuda`; skipped without pytest."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"status": "skipped", "reason": "pytest is not installed: sections 2 and 3 are the checks"}
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text())
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", *files]
    code, output = bounded(command, seconds, log)
    status = "passed" if code == 0 else "timed out" if code is None else "failed"
    return {"status": status, "files": files, "exit_code": code, "output_tail": output[-3000:]}


# ---------------------------------------------------------------- 2, 3. compiled vs eager, no host sync


def step_batches(kind: str, sizes: dict[str, Any], device: torch.device, n: int, side: int = 0) -> list:
    """`n` batches on the device (4 distinct ones in turn): the data path is not what is checked here."""
    classes = sizes["classes"] if kind == "retrain" else sizes["search_ids"][side]
    distinct = [(torch.randn(sizes["ids_per_batch"] * sizes["instances"], 3, sizes["height"], sizes["height"] // 2,
                             generator=torch.Generator().manual_seed(100 * side + i)).to(device),
                 pk_labels(sizes["ids_per_batch"], sizes["instances"], classes, seed=100 * side + i).to(device))
                for i in range(4)]
    return [distinct[i % 4] for i in range(n)]


def sync_checked(batches: list, checked: int):
    """Yields the batches; the last `checked` iterations run under set_sync_debug_mode("error") (the
    epoch's closing host reads come after the last batch, outside)."""
    for i, batch in enumerate(batches):
        if i == len(batches) - checked:
            torch.cuda.set_sync_debug_mode("error")
        yield batch
    torch.cuda.set_sync_debug_mode("default")


def run_steps(kind: str, compile: bool, backend: str, sizes: dict[str, Any], device: torch.device, iters: int,
              check_sync: bool) -> dict[str, Any]:
    """One epoch of `iters` iterations of the retrain or search step from seed 0: the mean losses, and every
    trained tensor before and after."""
    values = {k: sizes[k] for k in ("height", "ids_per_batch", "instances")}
    cfg = make_config(kind, {**values, "compile": compile, "compile_backend": backend, "device": device.type})
    train = step_batches(kind, sizes, device, iters)
    batches = sync_checked(train, min(SYNC_CHECKED, iters - 2)) if check_sync else train
    torch.manual_seed(0)
    if kind == "retrain":
        model = spaces.build_msinet("msmt", sizes["classes"]).to(device)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                    momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        tensors = {"weights": list(model.parameters())}
        before = {k: [t.detach().clone() for t in v] for k, v in tensors.items()}
        losses, _ = train_epoch(model, batches, optimizer, cfg, device, 0)
    else:
        model = spaces.Supernet().to(device)
        memories = [spaces.PrototypeMemory(n, images_per_id=cfg.instances).to(device) for n in sizes["search_ids"]]
        optimizer = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        architect = spaces.Architect(model, memories[1], lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay,
                                     loss=side_loss(model, memories[1], cfg, device))
        tensors = {"weights": model.weight_parameters(), "alpha": [model.alpha],
                   "memories": [m.prototypes for m in memories]}
        before = {k: [t.detach().clone() for t in v] for k, v in tensors.items()}
        valid = iter(step_batches(kind, sizes, device, iters, side=1))
        losses = search_epoch(model, batches, valid, architect, memories[0], optimizer, cfg, device, 0)
    after = {k: [t.detach().clone() for t in v] for k, v in tensors.items()}
    return {"losses": losses, "before": before, "after": after}


def agreement(eager: dict[str, Any], compiled: dict[str, Any]) -> dict[str, Any]:
    """Largest relative loss difference; per group, |compiled - eager| / |eager - start| over all its tensors."""
    losses = {k: abs(compiled["losses"][k] - v) / max(abs(v), 1e-12) for k, v in eager["losses"].items()}
    updates = {}
    for group, start in eager["before"].items():
        moved = torch.cat([(a - s).flatten().double() for a, s in zip(eager["after"][group], start, strict=True)])
        apart = torch.cat([(c - a).flatten().double()
                           for c, a in zip(compiled["after"][group], eager["after"][group], strict=True)])
        updates[group] = float(apart.norm() / moved.norm().clamp_min(1e-30))
    return {"loss_rel_diff": losses, "update_rel_diff": updates,
            "agree": all(v <= LOSS_RTOL for v in losses.values()) and all(v <= UPDATE_RTOL for v in updates.values())}


def steps_section(args: argparse.Namespace, device: torch.device, sizes: dict[str, Any], log: Log
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sections 2 and 3 from the same runs: eager and compiled, each step kind, sync-checked on CUDA."""
    from torch._dynamo.utils import counters

    check_sync = device.type == "cuda"
    compared: dict[str, Any] = {"loss_rtol": LOSS_RTOL, "update_rtol": UPDATE_RTOL, "iters": args.iters,
                                "backend": args.compile_backend}
    syncs: dict[str, Any] = {"checked_iterations": min(SYNC_CHECKED, args.iters - 2) if check_sync else 0}
    for kind in ("retrain", "search"):
        runs = {}
        for compile in (False, True):
            name = f"{kind}/{'compiled' if compile else 'eager'}"
            skips = counters["inductor"]["cudagraph_skips"]
            started = time.perf_counter()
            try:
                runs[compile] = run_steps(kind, compile, args.compile_backend, sizes, device, args.iters, check_sync)
                syncs[name] = "passed" if check_sync else "not checked: no CUDA"
            except Exception as error:  # noqa: BLE001 - recorded; a sync error reruns without the check
                if check_sync:
                    torch.cuda.set_sync_debug_mode("default")
                text = "".join(traceback.format_exception(error))
                if check_sync and "synchroniz" in str(error):
                    syncs[name] = {"status": "failed", "where": text[-4000:]}
                    log(f"{name}: HOST SYNC inside the step:\n{text[-2000:]}")
                    try:
                        runs[compile] = run_steps(kind, compile, args.compile_backend, sizes, device, args.iters,
                                                  False)
                    except Exception as again:  # noqa: BLE001
                        compared[name] = {"error": "".join(traceback.format_exception(again))[-4000:]}
                else:
                    compared[name] = {"error": text[-4000:]}
                    log(f"{name}: FAILED\n{text[-2000:]}")
            seconds = time.perf_counter() - started
            compared[f"{name}/seconds"] = seconds
            compared[f"{name}/cudagraph_skips"] = counters["inductor"]["cudagraph_skips"] - skips
            log(f"{name}: {seconds:.1f} s" + (f", losses {runs[compile]['losses']}" if compile in runs else ""))
        if len(runs) == 2:
            compared[kind] = agreement(runs[False], runs[True])
            log(f"{kind}: compiled vs eager {compared[kind]}")
    compared["status"] = "passed" if all(compared.get(k, {}).get("agree") for k in ("retrain", "search")) else "failed"
    if check_sync:
        syncs["status"] = "passed" if all(syncs.get(f"{k}/{m}") == "passed" for k in ("retrain", "search")
                                          for m in ("eager", "compiled")) else "failed"
    else:
        syncs["status"] = "skipped"
    return compared, syncs


# ---------------------------------------------------------------- 4. bf16 vs fp32, by accuracy after training


def short_retrain(root: str, amp: bool, device: torch.device, epochs: int, height: int) -> dict[str, Any]:
    """The smoke recipe (scaled to `epochs`) on `root`'s synthetic Market-1501, from seed 0: test and val
    scores after training, and the last epoch's loss."""
    cfg = make_config("retrain", {"scale": "smoke", "dataset": "market1501", "data_dir": root, "seed": 0,
                                  "height": height, "epochs": epochs, "milestones": [max(1, epochs * 4 // 5)],
                                  "warmup_epochs": min(2, epochs - 1), "amp": amp, "device": device.type})
    splits = load_splits(cfg)
    torch.manual_seed(cfg.seed)
    model = spaces.build_msinet(cfg.genotype, splits.num_classes).to(device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = warmup_multistep(optimizer, cfg.warmup_epochs, cfg.warmup_factor, cfg.milestones, cfg.lr_gamma)
    loader = training_batches(splits.train, cfg, cfg.seed, 0, device)
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        loader.sampler.set_epoch(epoch)
        losses, _ = train_epoch(model, loader, optimizer, cfg, device, epoch)
        scheduler.step()
    seconds = time.perf_counter() - started
    scores = {**score_tests(model, splits, cfg, device, 0), **refresh_validation(model, splits, cfg, device, 0,
                                                                                cfg.epochs, {})}
    keep = ("source/mAP", "source/rank1", "val/mAP", "val/rank1")
    return {"loss": losses["loss"], **{k: scores[k] for k in keep if k in scores}, "train_seconds": seconds}


def bf16_section(args: argparse.Namespace, device: torch.device, log: Log) -> dict[str, Any]:
    height, ids = (128, 60) if device.type == "cuda" else (32, 24)  # P = 8 needs 8 training ids
    result: dict[str, Any] = {"epochs": args.epochs, "height": height, "ids": ids}
    with tempfile.TemporaryDirectory(prefix="msinet-device-check-") as root:
        synthesize("market1501", root, ids=ids, seed=0, image_size=(height, height // 2))
        for name, amp in (("fp32", False), ("bf16", True)):
            result[name] = short_retrain(root, amp, device, args.epochs, height)
            log(f"bf16_vs_fp32 {name}: {result[name]}")
    result["status"] = "measured" if device.type == "cuda" else "measured (the CPU has no bf16 autocast here)"
    return result


# ---------------------------------------------------------------- 5. throughput


def bounded(command: list[str], seconds: float, log: Log) -> tuple[int | None, str]:
    """Runs `command` in its own process group, its output streamed into the log; the whole group is ended at
    the deadline (the throughput benchmark starts packed trials of its own). Exit code (None when cut) and
    the output."""
    log(f"$ {' '.join(command)}  (at most {seconds:.0f} s)")
    start = log.file.tell()
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = process.wait(timeout=max(1.0, seconds))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    output = (log.out / "device_check.log").read_bytes()[start:].decode(errors="replace")
    print(output, end="", flush=True)
    return code, output


def throughput_section(args: argparse.Namespace, device: torch.device, out: Path, seconds: float, log: Log
                       ) -> dict[str, Any]:
    # packing 1/2/4/8 with and without MPS (where its control daemon is installed); the PIL baseline gets the
    # loader processes a study trial gets (the benchmark's default)
    if device.type == "cuda":  # full size, fewer iterations than the benchmark's own defaults
        flags = ["--iters", "20", "--warmup", "5", "--repeats", "1", "--mps"]
    else:  # every section once, tiny
        flags = ["--height", "32", "--classes", "8", "--ids", "12", "--iters", "1", "--warmup", "1", "--repeats", "1",
                 "--workers", "0", "--ids-per-batch", "4", "--instances", "2", "--variants", "device",
                 "--packing", "1", "--mps"]
    figures = out / "throughput.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--device", device.type, *flags,
               "--json", str(figures)]
    code, _ = bounded(command, seconds, log)
    result: dict[str, Any] = {"exit_code": code, "command": command, "seconds_allowed": seconds}
    result["status"] = "complete" if code == 0 else f"cut at {seconds:.0f} s" if code is None else "failed"
    if figures.exists():
        result["figures"] = json.loads(figures.read_text())
    return result


# ---------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    device = resolve_device(args.device)
    configure_backends(device)
    sizes = SIZES["cuda" if device.type == "cuda" else "cpu"]
    args.iters = args.iters or (20 if device.type == "cuda" else 12)
    args.epochs = args.epochs or (40 if device.type == "cuda" else 1)
    args.compile_backend = args.compile_backend or ("inductor" if device.type == "cuda" else "eager")
    today = datetime.date.today().isoformat()
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"device_check_{device_slug(device)}_{today}")
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out)
    report: dict[str, Any] = {"device": environment(device).get("name"), "torch": torch.__version__, "date": today,
                              "environment": environment(device), "args": vars(args), "sections": {}}
    log(f"device check on {report['device']} (torch {torch.__version__}), budget {args.budget:.0f} s, into {out}")

    def left() -> float:
        return args.budget - (time.monotonic() - started)

    def section(name: str, result: dict[str, Any]) -> None:
        report["sections"][name] = result
        report["seconds"] = time.monotonic() - started
        log(f"== {name}: {result.get('status')} ({report['seconds']:.0f} s so far)")
        log.json(report)

    section("cuda_tests", cuda_tests(log, min(150.0, left() / 3)))
    compared, syncs = steps_section(args, device, sizes, log)
    section("compiled_vs_eager", compared)
    section("sync_free", syncs)
    section("bf16_vs_fp32", bf16_section(args, device, log))
    section("throughput", throughput_section(args, device, out, max(30.0, left() - 10), log))
    checks = [report["sections"][k]["status"] for k in ("cuda_tests", "compiled_vs_eager", "sync_free")]
    report["passed"] = all(s in ("passed", "skipped") for s in checks)
    log.json(report)
    log(f"device check {'passed' if report['passed'] else 'FAILED'} in {time.monotonic() - started:.0f} s: "
        f"{out / 'device_check.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Timing helpers shared by the GPU benchmarks: device sync, peak memory, repeats, on-device batches.

Imports torch alone, so it runs on a lent GPU machine that has no Ray, MLflow or Optuna.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trials.config import ConfigError
from trials.data.datasets import Sample
from trials.runtime.device import resolve_device
from trials.runtime.folders import OutputError, check_output


def checked_device(args: argparse.Namespace, files: tuple[str, ...] = (),
                   folders: tuple[str, ...] = ()) -> torch.device:
    """The benchmark's --device, and its output files and folders (argument names), checked before anything
    is measured as every command checks them; a problem is one `error:` paragraph and exit status 2."""
    try:
        for name in files + folders:
            if getattr(args, name, None):
                check_output(getattr(args, name), f"--{name.replace('_', '-')}", file=name in files)
        return resolve_device(args.device, "--device")
    except (ConfigError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    """Drop the last section's tensors so each peak-memory figure is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def timed(run: Callable[[int], Any], args: argparse.Namespace, device: torch.device) -> list[float]:
    """`run(n)` does n iterations; warm up once, then the seconds of each timed repeat."""
    run(args.warmup)
    sync(device)
    seconds = []
    for _ in range(args.repeats):
        sync(device)
        start = time.perf_counter()
        run(args.iters)
        sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def rates(seconds: list[float], args: argparse.Namespace, batch: int) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {"images_per_s": args.iters * batch / median, "ms_per_iter": 1000 * median / args.iters,
            "repeat_seconds": seconds, "iters": args.iters, "warmup": args.warmup, "batch": batch}


def pk_labels(ids_per_batch: int, instances: int, classes: int, seed: int) -> torch.Tensor:
    """P distinct ids x K: the label layout the batch-hard triplet and SAM losses see in training."""
    ids = torch.randperm(classes, generator=torch.Generator().manual_seed(seed))[:ids_per_batch]
    return ids.repeat_interleave(instances)


class DeviceBatches:
    """The same on-device batch n times; has `.sampler.set_epoch` so `search_epoch` takes it as a loader."""

    def __init__(self, inputs: torch.Tensor, pids: torch.Tensor, n: int):
        self.inputs, self.pids, self.n = inputs, pids, n
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter([(self.inputs, self.pids)] * self.n)


def runs(cfg, device: torch.device) -> str:
    """What a trial config really runs on `device`, as the trials decide it: bf16 autocast and channels_last
    only on CUDA (`trials.runtime.device.autocast`, `run_retrain`), CUDA graphs only for inductor on CUDA
    (`compiled`). A row named bf16 that ran fp32 says so."""
    cuda = device.type == "cuda"
    parts = ["bf16 autocast" if cfg.amp and cuda else "fp32"]
    if cfg.amp and not cuda:
        parts[0] += " (amp asked: autocast is CUDA-only)"
    if cfg.channels_last and cuda:
        parts.append("channels_last")
    if cfg.compile:
        graphs = ", CUDA graphs" if cuda and cfg.compile_backend == "inductor" else ""
        parts.append(f"compiled ({cfg.compile_backend}{graphs})")
    if cfg.sam_mode != "none":
        parts.append(f"SAM {cfg.sam_mode}")
    return ", ".join(parts)


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def environment(device: torch.device) -> dict[str, Any]:
    import torchvision

    env = {"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(device),
           "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "threads": torch.get_num_threads(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
           "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(name=props.name, capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        env["name"] = "cpu"
    return env


def widen(samples: list[Sample], copies: int) -> list[Sample]:
    """The training ids repeated under new pids: a synthetic epoch of ~30 ids ends every few batches and
    restarts the worker pipeline, a Market-1501 epoch (751 ids, ~200 batches) rarely does."""
    n = len({s.pid for s in samples})
    return [s._replace(pid=c * n + s.pid) for c in range(copies) for s in samples]

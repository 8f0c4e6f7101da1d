"""Where a trial computes: CUDA when present (honouring CUDA_VISIBLE_DEVICES), else CPU."""

from __future__ import annotations

import contextlib
import os

import torch

from trials.config import ConfigError, check_device


def resolve_device(name: str = "auto", flag: str = "device") -> torch.device:
    """'auto' picks the first visible GPU, else the CPU. Names are checked as every command checks them
    (trials.config.check_device); a GPU that is not there is a ConfigError naming `flag`: the same request
    fails the same way on every attempt."""
    check_device(name, flag)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise ConfigError(f"{flag} {name!r}: CUDA is not available on this machine (use cpu or auto)")
        if (device.index or 0) >= visible:
            raise ConfigError(f"{flag} {name!r}: this machine has {visible} visible GPU(s), cuda:0 to "
                              f"cuda:{visible - 1}")
    return device


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning pays off for the fixed input sizes of ReID training."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op elsewhere, so CPU runs stay exact."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(model: torch.nn.Module, enabled: bool, backend: str, device: torch.device) -> torch.nn.Module:
    """The training forward through `torch.compile` when enabled (CUDA graphs on CUDA: PK batches have static
    shapes). The module shares its parameters with `model`; evaluation and checkpoints keep using `model`."""
    if not enabled:
        return model
    mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
    return torch.compile(model, backend=backend, mode=mode, dynamic=False)


def loader_workers(requested: int | None) -> int:
    """Loader processes: as asked, else the CPUs Ray gave this trial (minus the training process)."""
    if requested is not None:
        return requested
    cpus = _ray_cpus()
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, int(cpus) - 1))


def _ray_cpus() -> float | None:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:  # not inside a Ray worker
        return None
    return None

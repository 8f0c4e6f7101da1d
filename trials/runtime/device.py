"""Where a trial computes: CUDA when present (honouring CUDA_VISIBLE_DEVICES), else CPU."""

from __future__ import annotations

import contextlib
import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks the first visible GPU, else the CPU; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name!r} was requested but CUDA is not available on this machine")
    return device


class NoCudaError(RuntimeError):
    """A trial holds a GPU share but finds no CUDA: it would train on the CPU, ~100x slower, unnoticed."""


def check_gpu_share(gpus: float, device: str) -> None:
    """A trial Ray gave a GPU share must find CUDA, unless its config says `device: cpu` on purpose (e.g. on a
    simulated cluster, whose GPUs are logical). Raised before any data is read or any step taken."""
    if gpus <= 0 or device != "auto" or torch.cuda.is_available():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    raise NoCudaError(f"this trial holds {gpus:g} GPU but CUDA is not available on its node (torch "
                      f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}, CUDA_VISIBLE_DEVICES="
                      f"{visible}): a missing or broken NVIDIA driver, or a CPU-only torch. Fix the node, or train "
                      "on the CPU on purpose with device: cpu in the study (--set device=cpu)")


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

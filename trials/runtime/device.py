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


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning pays off for the fixed input sizes of ReID training."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op elsewhere, so CPU runs stay exact."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compiled(fn, enabled: bool, backend: str, device: torch.device):
    """`fn` (a module or a function) through `torch.compile` when enabled, else `fn` itself. Whole
    (`fullgraph`: a graph break, such as a host read, is an error rather than a silent split) and with CUDA
    graphs on CUDA (PK batches have static shapes). A compiled module shares its parameters with the
    original; evaluation and checkpoints keep using the original."""
    if not enabled:
        return fn
    mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
    return torch.compile(fn, backend=backend, mode=mode, dynamic=False, fullgraph=True)


def to_device(tensor: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A batch tensor on the training device without making the host wait: a host tensor is copied from
    pinned memory (the PIL loader pins already), asynchronously; `channels_last` applies to images on CUDA."""
    if tensor.device.type == "cpu" and device.type == "cuda" and not tensor.is_pinned():
        tensor = tensor.pin_memory()
    tensor = tensor.to(device, non_blocking=True)
    if channels_last and device.type == "cuda" and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def allocate_grads(*optimizers: torch.optim.Optimizer) -> None:
    """Give every trained parameter a zero gradient tensor of its own, once, so that zero_grad(set_to_none=
    False) keeps it and each backward adds into it in place. Under CUDA graphs a gradient created by a
    backward is that graph's output buffer, which the next replay overwrites: the search step's second
    backward would then add into (or over) the first one's gradients."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.requires_grad and param.grad is None:
                    param.grad = torch.zeros_like(param)


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

"""Where a trial computes: CUDA when present (honouring CUDA_VISIBLE_DEVICES), else CPU."""

from __future__ import annotations

import contextlib
import os
import sys

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


def trial_cpus() -> int:
    """The CPUs this trial may use: the CPUs Ray gave it inside a Ray worker, else the process's CPU affinity
    (what `taskset` or a container allows), at least 1. Sizes loader processes and decoding threads, so
    trials packed on one node do not each take every core."""
    cpus = _ray_cpus()
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, int(cpus))


def loader_workers(requested: int | None) -> int:
    """Loader processes: as asked, else those of `workers_for(trial_cpus())`."""
    return requested if requested is not None else workers_for(trial_cpus())


def workers_for(cpus: float) -> int:
    """The loader processes a trial with `cpus` CPUs gets: one CPU stays with the training process, at most 8."""
    return max(0, min(8, int(cpus) - 1))


def shared_device(device: torch.device) -> str:
    """Why this trial may share `device` with other trials ("" when it has it alone, as far as Ray's
    resources tell): a fraction of a GPU (packed trials), or on a CPU device fewer CPUs than its node has.
    A latency measured on a shared device says more about the neighbours than about the network."""
    resources = _ray_resources()
    if resources is None:  # a standalone trial: nothing else of ours runs beside it
        return ""
    if device.type == "cuda":
        share = resources.get("GPU", 0.0)
        return f"a {share:g} share of the GPU (packed trials)" if share < 1 else ""
    cpus, node = resources.get("CPU", 0.0), _ray_node_cpus()
    return f"{cpus:g} of the node's {node:g} CPUs (trials beside it)" if node and cpus < node else ""


def _ray_cpus() -> float | None:
    resources = _ray_resources()
    return None if resources is None else resources.get("CPU")


def _ray_resources() -> dict[str, float] | None:
    """The resources Ray gave this process (inside a Ray worker), else None."""
    if "ray" not in sys.modules:  # a Ray worker has imported Ray already; anything else is not one
        return None
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_assigned_resources()
    except Exception:  # not inside a Ray worker
        return None
    return None


def _ray_node_cpus() -> float | None:
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
        return next((n["Resources"].get("CPU") for n in ray.nodes() if n["NodeID"] == node), None)
    except Exception:  # the cluster's view is unavailable: say nothing rather than guess
        return None

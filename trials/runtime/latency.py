"""Measured inference latency of a network on the trial's device (MACs do not predict speed: an all-`ag`
genotype has the MACs of an all-`none` one and is slower). torch.utils.benchmark handles CUDA
synchronisation; the figures are medians over repeated blocks (spaces.latency.time_ms).

The figures name their batch (`bN`) and come with what they were measured at and on: the input size, the
device, and whether other trials shared it (a fraction of a GPU, part of a node's CPUs), so that only like is
compared with like (`analysis.tables.comparable_latency`)."""

from __future__ import annotations

import torch

from spaces.latency import device_name, time_ms
from trials.runtime.device import shared_device

BATCH_SIZES = (1, 64)


def measure_latency(model: torch.nn.Module, image_size: tuple[int, int], device: torch.device,
                    batch_sizes: tuple[int, ...] = BATCH_SIZES, min_run_time: float = 0.5) -> dict[str, float]:
    """`latency/bN_ms_per_image` and `latency/bN_images_per_second` for each batch size, eval mode,
    no autograd (the model's mode is restored afterwards); `latency/measured_at` (HxW), `latency/measured_on`
    (the device's name) and `latency/shared` ("no", or "yes: " and why)."""
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    try:
        with torch.no_grad():
            for batch in batch_sizes:
                images = torch.randn(batch, 3, *image_size, device=device)
                milliseconds = time_ms(lambda images=images: model(images), min_run_time)
                metrics[f"latency/b{batch}_ms_per_image"] = milliseconds / batch
                metrics[f"latency/b{batch}_images_per_second"] = 1000.0 * batch / milliseconds
    finally:
        model.train(was_training)
    metrics["latency/threads"] = float(torch.get_num_threads())
    shared = shared_device(device)
    return {**metrics, "latency/measured_at": "x".join(map(str, image_size)),
            "latency/measured_on": device_name(device), "latency/shared": f"yes: {shared}" if shared else "no"}

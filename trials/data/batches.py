"""A trial's training batches: the PIL loader (worker processes decode and augment) or the device-resident
path (decoded once, augmented on the device); the same PK order, seeds and distributions either way."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from trials.config import TrialConfig
from trials.data.datasets import Sample
from trials.data.loaders import train_loader


def training_batches(samples: Sequence[Sample], cfg: TrialConfig, seed: int, workers: int, device: torch.device):
    """An iterable of (images, pids, camids, indices) with `.sampler.set_epoch` and `.batch_size`."""
    if cfg.data_path == "resident":
        from trials.data.resident import ResidentLoader

        return ResidentLoader(samples, cfg.image_size, cfg.ids_per_batch, cfg.instances, seed, device,
                              cfg.cross_domain, cfg.pk_replacement, cfg.erasing, cfg.crop_padding,
                              Path(cfg.resident_cache) if cfg.resident_cache else None)
    return train_loader(samples, cfg.image_size, cfg.ids_per_batch, cfg.instances, seed, workers, cfg.cross_domain,
                        device.type == "cuda", cfg.pk_replacement, cfg.erasing, cfg.crop_padding)

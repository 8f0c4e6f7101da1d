"""What both trials do first: validate the config, pick the device, seed, size the loaders."""

from __future__ import annotations

from typing import Any

import torch

from trials.config import TrialConfig, make_config
from trials.runtime.device import configure_backends, loader_workers, resolve_device
from trials.runtime.rng import seed_everything
from trials.runtime.session import LocalSession


def start_trial(kind: str, config: dict[str, Any] | TrialConfig, session=None):
    """Returns (config, session, device, loader workers); standalone runs get a LocalSession on `out`."""
    cfg = config if isinstance(config, TrialConfig) else make_config(kind, config)
    device: torch.device = resolve_device(cfg.device)
    configure_backends(device)
    seed_everything(cfg.seed)
    return cfg, session or LocalSession(cfg.out), device, loader_workers(cfg.workers)

"""What both trials do first: validate the config, pick the device, seed, size the loaders."""

from __future__ import annotations

from typing import Any

import torch

from spaces.latency import load_table
from trials.config import ConfigError, TrialConfig, make_config
from trials.runtime.device import configure_backends, loader_workers, resolve_device
from trials.runtime.rng import seed_everything
from trials.runtime.session import LocalSession


def cost_table(cfg: TrialConfig) -> dict[str, Any]:
    """The trial's latency table (spaces.latency); one that cannot be read is a ConfigError naming it."""
    try:
        return load_table(cfg.latency_table_path)
    except ValueError as error:
        raise ConfigError(f"latency_table: {error}") from None


def start_trial(kind: str, config: dict[str, Any] | TrialConfig, session=None):
    """Returns (config, session, device, loader workers); standalone runs get a LocalSession on `out`."""
    cfg = config if isinstance(config, TrialConfig) else make_config(kind, config)
    device: torch.device = resolve_device(cfg.device)
    configure_backends(device)
    seed_everything(cfg.seed)
    return cfg, session or LocalSession(cfg.out), device, loader_workers(cfg.workers)

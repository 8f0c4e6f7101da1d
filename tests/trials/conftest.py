"""One small trained checkpoint shared by the deployment tests (export, extraction, registry)."""

from pathlib import Path

import pytest

from trials.retrain import run_retrain
from trials.runtime.session import LocalSession


@pytest.fixture(scope="session")
def smoke_checkpoint(synthetic_root, tmp_path_factory) -> Path:
    """checkpoint/model.pt of a 2-epoch smoke retrain on the synthetic Market-1501 layout (64x32 images)."""
    out = tmp_path_factory.mktemp("smoke-retrain")
    run_retrain({"scale": "smoke", "dataset": "market1501", "data_dir": str(synthetic_root), "epochs": 2,
                 "eval_interval": 2, "seed": 0}, LocalSession(out, verbose=False))
    return out / "checkpoint" / "model.pt"

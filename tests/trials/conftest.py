"""Shared by the trials' tests: a session that dies after N reports (the resume tests of both trials), and
one small trained checkpoint (export, extraction, registry)."""

from pathlib import Path

import pytest

from trials.retrain import run_retrain
from trials.runtime.session import LocalSession


class Interrupted(Exception):
    """Raised by `StopAfter` in place of a killed process."""


class StopAfter(LocalSession):
    Interrupted = Interrupted

    def __init__(self, out, reports):
        super().__init__(out, verbose=False)
        self.left = reports

    def report(self, metrics, checkpoint_dir=None):
        super().report(metrics, checkpoint_dir)
        self.left -= 1
        if self.left == 0:
            raise Interrupted


@pytest.fixture
def stop_after():
    """`stop_after(out, reports)`: the dying session; its error is `stop_after.Interrupted`."""
    return StopAfter


@pytest.fixture(scope="session")
def smoke_checkpoint(synthetic_root, tmp_path_factory) -> Path:
    """checkpoint/model.pt of a 2-epoch smoke retrain on the synthetic Market-1501 layout (64x32 images)."""
    out = tmp_path_factory.mktemp("smoke-retrain")
    run_retrain({"scale": "smoke", "dataset": "market1501", "data_dir": str(synthetic_root), "epochs": 2,
                 "eval_interval": 2, "seed": 0}, LocalSession(out, verbose=False))
    return out / "checkpoint" / "model.pt"

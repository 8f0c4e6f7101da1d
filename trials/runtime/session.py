"""Where a trial reports metrics and keeps checkpoints: Ray Tune's session, or a local folder.

The trials call only `restore()` and `report()`, so the same function runs standalone and under Tune.
Optional hooks (e.g. MLflow logging, wired by the platform) see every report; trials never need them.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Hook = Callable[[dict[str, Any], Path | None], None]


class LocalSession:
    """Standalone runs: the latest checkpoint under OUT/checkpoint, one JSON line per report on stderr."""

    def __init__(self, out_dir: str | Path | None = None, hooks: Iterable[Hook] = (), verbose: bool = True):
        self.out_dir = Path(out_dir).resolve() if out_dir else None
        self.hooks = list(hooks)
        self.verbose = verbose
        self.history: list[dict[str, Any]] = []

    def restore(self) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / "checkpoint"
        return path if (path / "state.pt").exists() else None

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        self.history.append(dict(metrics))
        if self.verbose:
            print(json.dumps(_short(metrics)), file=sys.stderr, flush=True)
        if checkpoint_dir is not None and self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            staging = self.out_dir / "checkpoint.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(checkpoint_dir, staging)
            final = self.out_dir / "checkpoint"
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)  # a crash mid-copy never leaves a half-written "checkpoint"
        for hook in self.hooks:
            hook(metrics, checkpoint_dir)


class TuneSession:
    """Under Ray Tune: `tune.report` with a checkpoint, `tune.get_checkpoint` on (re)start."""

    def __init__(self, hooks: Iterable[Hook] = ()):
        self.hooks = list(hooks)
        self._restored: tempfile.TemporaryDirectory | None = None

    def restore(self) -> Path | None:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        self._restored = tempfile.TemporaryDirectory(prefix="msinet-restore-")
        return Path(checkpoint.to_directory(self._restored.name))

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        from ray import tune

        for hook in self.hooks:
            hook(metrics, checkpoint_dir)
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)


PROGRESS_KEYS = ("epoch", "loss", "loss/weight", "loss/architecture", "lr", "genotype", "val/mAP", "val/rank1")


def _short(metrics: dict[str, Any]) -> dict[str, Any]:
    """A progress line: the keys a person watches, plus the test metrics once they exist."""
    keep = {k: v for k, v in metrics.items()
            if k in PROGRESS_KEYS or (k.startswith(("source/", "target/")) and not isinstance(v, list))}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in keep.items()}

"""Which failed trials Tune retries: a lost worker or node, or an error not known to repeat, from its last
checkpoint, up to a phase's `max_failures`; never a failure that repeats (bad data, a bad configuration,
divergence, user code: trials/runtime/failures.py), which ends its trial at once.

Tune's FailureConfig retries every failure alike and offers no hook between a failure and the decision to
retry it, so the driver adds the rule to that decision, `Trial.should_recover`, once (`install`): a trial
whose last error is a failure that repeats does not qualify. The error is the one Tune just wrote beside the
trial (`error.pkl`), read back.
"""

from __future__ import annotations

from pathlib import Path

from ray import cloudpickle
from ray.tune.experiment import Trial

from trials.runtime.failures import failure_kind

_TUNE_RULE = Trial.should_recover


def last_error(trial: Trial) -> BaseException | None:
    """The error Tune recorded for the trial's latest failure (None when there is none or it cannot be read)."""
    path = trial.pickled_error_file
    if not path or not Path(path).is_file():
        return None
    try:
        return cloudpickle.loads(Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - an unreadable record leaves the decision to Tune's own rule
        return None


def should_recover(trial: Trial) -> bool:
    """Tune's rule (failures so far within max_failures), for failures that may not repeat."""
    return failure_kind(last_error(trial)) is None and _TUNE_RULE(trial)


def install() -> None:
    """Make the rule Tune's, in this driver process (idempotent)."""
    Trial.should_recover = should_recover

"""Which failures of a trial repeat: bad data, a bad configuration, divergence and errors of user code fail the
same way on every attempt, so a trial that meets one ends at once and is never retried. Everything else (a
lost worker or node, a server that did not answer, an error not known to repeat) is left to Tune's retries.

The trial raises `TrialFailed` for a failure that repeats (trials/tune_entry.py); the driver refuses Tune's
retry of it (platform/study_retries.py). Imports nothing heavy: the driver unpickles these errors.
"""

from __future__ import annotations

from trials.config import ConfigError
from trials.dataset_names import DatasetError, LoaderError
from trials.text_files import TextFileError

REPEATING = ("bad data", "bad configuration", "divergence", "user code")


class NonFiniteLossError(RuntimeError):
    """A loss term or the weights became NaN or infinite; the message says which, where, and at which lr."""


class TrialFailed(RuntimeError):
    """A trial's failure that repeats: `kind` is one of REPEATING; str() is `kind: message`."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self):  # Ray pickles it to the driver
        return TrialFailed, (self.kind, self.message)


def failure_kind(error: BaseException | None) -> str | None:
    """The kind of a failure that repeats, or None for one Tune may retry. Looks inside Ray's RayTaskError."""
    error = getattr(error, "cause", None) or error
    if isinstance(error, TrialFailed):
        return error.kind
    if isinstance(error, LoaderError):
        return "user code"
    if isinstance(error, DatasetError | TextFileError):
        return "bad data"
    if isinstance(error, ConfigError):
        return "bad configuration"
    if isinstance(error, NonFiniteLossError):
        return "divergence"
    return None

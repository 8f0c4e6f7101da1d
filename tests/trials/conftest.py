"""A session that dies after N reports, like a trial killed mid-run: resume tests of both trials use it."""

import pytest

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

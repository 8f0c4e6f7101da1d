"""A report tells a live launch from one whose driver died: the parent run's heartbeat tag."""

import pandas as pd

from analysis.report import launch_state


def _row(status, beat=None):
    return pd.Series({"status": status, "tags.msinet.heartbeat": None if beat is None else str(beat)})


def test_running_with_a_fresh_heartbeat_is_live():
    assert launch_state(_row("RUNNING", 1000), now=1020) == "running (live)"


def test_running_with_a_silent_driver_is_interrupted():
    state = launch_state(_row("RUNNING", 1000), now=1000 + 3600)
    assert "interrupted" in state and "60 min" in state and "--resume" in state


def test_ended_launches_say_how():
    assert launch_state(_row("KILLED", 1000), now=9e9) == "interrupted (KILLED)"
    assert launch_state(_row("FINISHED", 1000), now=9e9) == "FINISHED"

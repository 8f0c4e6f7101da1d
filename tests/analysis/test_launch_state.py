"""A report tells a live launch from one whose driver died: the parent run's heartbeat tag."""

import pandas as pd

from analysis.launch_state import launch_state


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


def test_a_silent_launchs_running_trials_read_as_interrupted_and_others_keep_their_status():
    from analysis.launch_state import trials_as_seen

    launches = pd.DataFrame([{"run_id": "dead", "status": "RUNNING", "tags.msinet.heartbeat": "1000"},
                             {"run_id": "live", "status": "RUNNING", "tags.msinet.heartbeat": "4500"},
                             {"run_id": "stopped", "status": "KILLED", "tags.msinet.heartbeat": "1000"},
                             {"run_id": "old", "status": "RUNNING", "tags.msinet.heartbeat": None}])
    trials = pd.DataFrame([{"parent_run_id": parent, "status": status, "error": None}
                           for parent in ("dead", "live", "stopped", "old") for status in ("RUNNING", "FINISHED")])
    seen = trials_as_seen(trials, launches, now=4600)
    assert list(seen["status"]) == ["KILLED", "FINISHED", "RUNNING", "FINISHED", "KILLED", "FINISHED", "RUNNING",
                                    "FINISHED"]
    assert seen["error"].iloc[0] == "interrupted: its launch's driver stopped"
    assert list(trials["status"]).count("RUNNING") == 4  # the frame read from the store is left as it was


def _killed_launch(tmp_path, beat: float):
    """A store as a SIGKILLed driver leaves it: parent and one trial RUNNING, one trial FINISHED, and a RUNNING
    Optuna trial in the phase's study beside it."""
    import optuna
    from mlflow.tracking import MlflowClient

    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/optuna.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("tiny", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="tiny-L1", tags={
        "msinet.role": "launch", "msinet.study": "tiny", "msinet.launch": "L1", "msinet.metric": "val/mAP",
        "msinet.mode": "max", "msinet.heartbeat": str(int(beat)), "msinet.optuna_storage": storage}).info.run_id
    trials = {}
    for name, status in (("search/a", "RUNNING"), ("search/b", "FINISHED")):
        run = client.create_run(experiment, run_name=name, tags={
            "mlflow.parentRunId": parent, "msinet.role": "trial", "msinet.trial": name, "msinet.phase": "search",
            "msinet.kind": "search", "msinet.launch": "L1"})
        client.log_metric(run.info.run_id, "val/mAP", 0.1, step=1)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status)
        trials[name] = run.info.run_id
    optuna.create_study(study_name="tiny-L1-search", storage=storage).ask()
    return uri, storage, client, parent, trials


def test_the_report_gives_one_verdict_on_a_killed_launch_and_settles_its_stores(tmp_path):
    import time

    import optuna

    from analysis.report import write_report

    uri, storage, client, parent, trials = _killed_launch(tmp_path, time.time() - 3600)
    text = write_report(uri, "tiny", out=tmp_path / "r1", log=False).read_text()
    assert "**interrupted**" in text and "silent for 60 min" in text
    assert "still running" not in text and "KILLED" in text
    assert client.get_run(parent).info.status == "RUNNING"  # --no-log: the stores are only read

    text = write_report(uri, "tiny", out=tmp_path / "r2").read_text()
    assert "interrupted (KILLED)" in text and "still running" not in text
    assert client.get_run(parent).info.status == "KILLED"
    assert [client.get_run(trials[n]).info.status for n in ("search/a", "search/b")] == ["KILLED", "FINISHED"]
    states = [t.state for t in optuna.load_study(study_name="tiny-L1-search", storage=storage).trials]
    assert states == [optuna.trial.TrialState.FAIL]


def test_a_live_launch_is_left_running(tmp_path):
    import time

    from analysis.report import write_report

    uri, _, client, parent, trials = _killed_launch(tmp_path, time.time())
    text = write_report(uri, "tiny", out=tmp_path / "r").read_text()
    assert "running (live)" in text and "Some trials are still running" in text
    assert client.get_run(parent).info.status == "RUNNING" and client.get_run(trials["search/a"]).info.status == \
        "RUNNING"

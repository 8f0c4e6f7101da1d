"""The trials' logging path when MLflow's HTTP client retries a request the server had already committed (its
answer was lost or timed out): nothing may be logged twice. On a real SQLite store; the retry is the same
request sent again, as urllib3 sends it."""

import pytest

from trials.tracking import MLflowHook, ensure_store


@pytest.mark.slow
def test_a_retried_run_creation_leaves_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = ensure_store(uri, "retries")
    hook = MLflowHook(uri, experiment, None, "search/t1", {"epochs": 2})
    create = hook.client.create_run

    def created_twice(*args, **kwargs):  # the first answer lost, the same request (same start time) again
        kwargs["start_time"] = 1_700_000_000_000
        create(*args, **kwargs)
        return create(*args, **kwargs)

    hook.client.create_run = created_twice
    kept = hook.open()
    runs = hook.client.search_runs([experiment], "tags.`msinet.trial` = 'search/t1'")
    assert [r.info.run_id for r in runs] == [kept]
    hook({"epoch": 1, "loss": 1.0})
    again = MLflowHook(uri, experiment, None, "search/t1", {"epochs": 2})  # a restarted trial finds the same run
    assert again.open() == kept


def test_a_retried_metric_batch_is_stored_once(tmp_path):
    """The same batch (same timestamps) sent twice, as a retried `log_batch` is: the store keeps each value once."""
    from mlflow.entities import Metric

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    hook = MLflowHook(uri, ensure_store(uri, "retries"), None, "retrain/t1", {"epochs": 3})
    run_id = hook.open()
    batch = [Metric("loss", 0.5, 1_700_000_000_000, 1), Metric("epoch", 1.0, 1_700_000_000_000, 1)]
    hook.client.log_batch(run_id, metrics=batch)
    hook.client.log_batch(run_id, metrics=batch)
    assert [(m.step, m.value) for m in hook.client.get_metric_history(run_id, "loss")] == [(1, 0.5)]

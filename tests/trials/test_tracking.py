"""The MLflow hook against a real SQLite store: a smoke retrain lands in one child run, resumes into it."""

import json
import pickle

import pytest
from mlflow.tracking import MlflowClient

from trials.retrain import run_retrain
from trials.runtime.session import LocalSession
from trials.tracking import MLflowHook, ensure_store, flatten_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    experiment_id = ensure_store(uri, "tracking-test")
    assert ensure_store(uri, "tracking-test") == experiment_id  # idempotent
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, run_name="launch").info.run_id
    return uri, experiment_id, parent, client


def _children(client, experiment_id, parent):
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


@pytest.mark.slow
def test_a_smoke_retrain_is_one_child_run_with_metrics_tags_and_artefacts(store, synthetic_root, tmp_path):
    uri, experiment_id, parent, client = store
    config = {"scale": "smoke", "dataset": "market1501", "data_dir": str(synthetic_root), "epochs": 2,
              "eval_interval": 1}
    params = {**config, "lr": 0.065, "milestones": [150, 225], "optuna": {"sampler": "tpe"}}
    hook = MLflowHook(uri, experiment_id, parent, "retrain_00000", params, tags={"study": "smoke"})
    hook = pickle.loads(pickle.dumps(hook))  # as shipped to a Ray worker
    final = run_retrain(config, LocalSession(tmp_path / "out", hooks=[hook], verbose=False))

    children = _children(client, experiment_id, parent)
    assert len(children) == 1
    run = children[0]
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["msinet.trial"] == "retrain_00000"
    assert run.data.tags["study"] == "smoke"
    assert run.data.tags["genotype"] == final["genotype"]
    assert run.data.tags["env.device"] and run.data.tags["env.torch"] and run.data.tags["env.hostname"]
    assert run.data.params["lr"] == "0.065"
    assert run.data.params["dataset"] == "market1501"
    assert run.data.params["milestones"] == "150,225"
    assert run.data.params["optuna.sampler"] == "tpe"
    assert run.info.status == "FINISHED"

    history = client.get_metric_history(run.info.run_id, "val/mAP")
    assert sorted(m.step for m in history) == [1, 2]
    assert run.data.metrics["source/mAP"] == pytest.approx(final["source/mAP"])
    assert "source/cmc" not in run.data.metrics  # lists are not metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "source/mAP")] == [2]

    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"genotype.json", "cmc.png", "metrics.json", "checkpoint", "rank_lists.png", "activation_maps.png",
            "rank_lists.json"} <= names
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")] == ["checkpoint/model.pt"]
    for name in ("cmc.png", "rank_lists.png", "activation_maps.png"):
        png = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        with open(png, "rb") as f:
            assert f.read(8) == PNG_MAGIC
    assert not (tmp_path / "mlruns").exists()  # artefacts beside the SQLite file, not in the cwd
    check_deployment_records(client, uri, run, synthetic_root, tmp_path)

    # A resumed trial (a fresh hook, same name) logs into the same run.
    # It repeats the epochs after its last checkpoint: those are not logged twice.
    again = MLflowHook(uri, experiment_id, parent, "retrain_00000", params)
    again({"epoch": 2, "val/mAP": 0.9, "val/epoch": 2, "genotype": final["genotype"]}, None)
    again({"epoch": 3, "val/mAP": 0.5, "val/epoch": 3, "genotype": final["genotype"]}, None)
    children = _children(client, experiment_id, parent)
    assert [r.info.run_id for r in children] == [run.info.run_id]
    history = client.get_metric_history(run.info.run_id, "val/mAP")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert [m.value for m in history if m.step == 2] == [pytest.approx(final["val/mAP"])]


def check_deployment_records(client, uri, run, data_root, tmp_path):
    """What the final report adds for deployment: latency, the dataset, system metrics, an MLflow model."""
    import mlflow
    import mlflow.pytorch
    import torch

    import spaces
    from trials.data import load_dataset
    from trials.data.record import dataset_record

    for batch in (1, 64):
        assert run.data.metrics[f"latency/b{batch}_ms_per_image"] > 0
        assert run.data.metrics[f"latency/b{batch}_images_per_second"] > 0
    assert [m.step for m in client.get_metric_history(run.info.run_id, "latency/b1_ms_per_image")] == [2]

    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.name == "market1501" and logged.dataset.source_type == "local"
    assert logged.dataset.digest == dataset_record(load_dataset("market1501", data_root))["digest"]
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "training"
    assert json.loads(logged.dataset.profile)["train_images"] > 0

    assert any(k.startswith("system/cpu_utilization_percentage") for k in run.data.metrics)
    assert any(k.startswith("system/system_memory_usage") for k in run.data.metrics)

    model_uri = run.data.tags["msinet.model_uri"]
    # the logged model is named after the trial and its genotype, and lists the final scores with their dataset
    model = client.get_logged_model(model_uri.rsplit("/", 1)[-1])
    assert model.name == "retrain_00000-" + run.data.tags["genotype"].replace("/", "|")
    linked = {m.key: m for m in model.metrics}
    assert linked["val/mAP"].value == pytest.approx(run.data.metrics["val/mAP"]) and linked["val/mAP"].step == 2
    assert (linked["source/mAP"].dataset_name, linked["source/mAP"].dataset_digest) == (logged.dataset.name,
                                                                                         logged.dataset.digest)
    assert linked["params_no_classifier"].dataset_name is None and not any(k.startswith("system/") for k in linked)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        loaded = mlflow.pytorch.load_model(model_uri)
        signature = mlflow.models.get_model_info(model_uri).signature
    finally:
        mlflow.set_tracking_uri(previous)
    assert signature.inputs.inputs[0].shape == (-1, 3, 64, 32)
    assert signature.outputs.inputs[0].shape == (-1, 768)
    checkpoint = client.download_artifacts(run.info.run_id, "checkpoint/model.pt", str(tmp_path))
    reference = spaces.build_from_checkpoint(checkpoint).eval()
    images = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference(images))


def test_validation_metrics_are_logged_only_at_the_epochs_they_were_evaluated(store):
    """Trials carry `val/...` to every report (schedulers need it); MLflow gets it only where it was measured."""
    uri, experiment_id, parent, client = store
    hook = MLflowHook(uri, experiment_id, parent, "search_00002", {"epochs": 5})
    evaluated = {}
    for epoch in range(1, 5):
        if epoch in (1, 2, 4):
            evaluated = {"val/mAP": 0.1 * epoch, "val/mAP_ci_low": 0.05 * epoch, "val/epoch": epoch}
        hook({"epoch": epoch, "loss/weight": 3.0 - epoch / 2, **evaluated}, None)
    run_id = hook.run_id
    for key in ("val/mAP", "val/mAP_ci_low", "val/epoch"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == [1, 2, 4], key
    assert [m.value for m in client.get_metric_history(run_id, "val/mAP")] == pytest.approx([0.1, 0.2, 0.4])
    assert [m.step for m in client.get_metric_history(run_id, "loss/weight")] == [1, 2, 3, 4]


def test_fail_marks_the_run_failed_with_the_error(store):
    uri, experiment_id, parent, client = store
    hook = MLflowHook(uri, experiment_id, parent, "search_00001", {"lr": 0.025})
    hook({"epoch": 1, "loss/weight": 2.5, "genotype": "ag ag", "note": "text", "cmc": [1.0]}, None)
    hook.fail("diverged at epoch 1")

    run = client.get_run(hook.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "diverged at epoch 1"
    assert run.data.tags["mlflow.parentRunId"] == parent
    trial_metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith("system/")}
    assert trial_metrics == {"epoch": 1.0, "loss/weight": 2.5}
    assert run.data.params == {"lr": "0.025"}


def test_every_start_of_a_trial_is_counted_with_its_node(store):
    uri, experiment_id, parent, client = store
    for node in ("node-a", "node-b"):  # a first start, then a retry on another node (a fresh hook: a new worker)
        hook = MLflowHook(uri, experiment_id, parent, "retrain/t_00000", {"lr": 0.065}, {"env.ray_node": node})
        hook.record_start(node)
    run = client.get_run(hook.run_id)
    assert run.data.tags["msinet.nodes"] == "node-a,node-b" and run.data.tags["msinet.retries"] == "1"
    assert run.data.tags["env.ray_node"] == "node-b" and len(_children(client, experiment_id, parent)) == 1


def test_a_trial_holding_a_gpu_without_cuda_stops_before_training():
    import torch

    from trials.runtime.device import NoCudaError, check_gpu_share

    check_gpu_share(0.0, "auto")  # no GPU asked: nothing to check
    check_gpu_share(0.5, "cpu")  # the study trains on the CPU on purpose
    if torch.cuda.is_available():
        check_gpu_share(0.5, "auto")
        return
    with pytest.raises(NoCudaError, match=r"holds 0.5 GPU but CUDA is not available .*\(--set device=cpu\)"):
        check_gpu_share(0.5, "auto")


def test_params_are_flattened_and_long_values_cut():
    flat = flatten_params({"a": {"b": 1, "c": {"d": None}}, "m": [1, 2], "long": "x" * 7000})
    assert flat["a.b"] == "1" and flat["a.c.d"] == "None" and flat["m"] == "1,2"
    assert len(flat["long"]) == 6000 and flat["long"].endswith("[truncated, 7000 chars]")

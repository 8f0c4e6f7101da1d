"""Study files: every shipped study resolves at both scales; every mistake names the file and the field."""

import pytest
from study_spec import StudyError, available, load_study, parse_overrides

SHIPPED = ("smoke", "search", "in_domain", "cross_domain", "nas", "tcm_ablation")


def test_every_study_the_design_names_is_shipped():
    assert set(SHIPPED) <= set(available())


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("scale", ["smoke", "full"])
def test_shipped_studies_resolve_and_optimise_a_validation_metric(name, scale):
    study = load_study(name, scale)
    assert study.scale == scale
    assert study.metric.startswith("val/") and not study.optimise_test_metric
    for phase in study.phases:
        assert phase.config["scale"] == scale
        if scale == "smoke":  # minutes on a CPU
            assert phase.resources["gpu"] == 0


def test_the_smoke_study_runs_parallel_search_then_retrains_its_genotypes():
    study = load_study("smoke")
    search, retrain = study.phases
    assert (search.kind, retrain.kind) == ("search", "retrain")
    assert search.num_samples >= 2 and (search.max_concurrent or 2) >= 2
    assert retrain.genotypes["from"] == "search"
    assert study.synthetic and study.scale == "smoke"


def test_cross_domain_runs_every_sam_mode():
    phase = load_study("cross_domain", "smoke").phases[0]
    assert phase.config["target_dataset"] != phase.config["dataset"]
    assert set(phase.grid["sam_mode"]) == {"none", "pos", "neg", "pos_neg"}


def test_overrides_reach_every_phase_or_one_phase():
    study = load_study("smoke", overrides=parse_overrides(["lr=0.05", "retrain.config.epochs=7",
                                                           "search.num_samples=3"]))
    search, retrain = study.phases
    assert search.config["lr"] == retrain.config["lr"] == 0.05
    assert "lr" not in search.space and "lr" not in retrain.space  # a fixed value wins over a searched one
    assert retrain.config["epochs"] == 7 and search.num_samples == 3


def write(tmp_path, text):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


GOOD = """
description: a test study
phases:
  retrain:
    kind: retrain
    config: {dataset: market1501}
"""


@pytest.mark.parametrize("text, field", [
    (GOOD.replace("description: a test study", "descripton: a test study"), "descripton"),
    (GOOD.replace("kind: retrain", "kind: retrian"), "phases.retrain.kind"),
    (GOOD.replace("{dataset: market1501}", "{dataset: market1501, lrr: 0.1}"), "lrr (did you mean lr?)"),
    (GOOD.replace("{dataset: market1501}", "{sam_mode: both}"), "sam_mode"),
    (GOOD + "    space: {lr: {loguniform: [0.1, 0.01]}}\n", "phases.retrain.space.lr.loguniform"),
    (GOOD + "    space: {lr: {normal: [0, 1]}}\n", "phases.retrain.space.lr"),
    (GOOD + "    genotypes: {from: search}\n", "phases.retrain.genotypes.from"),
    (GOOD + "    resources: {gpu: -1}\n", "phases.retrain.resources"),
    (GOOD + "metric: source/mAP\n", "optimise_test_metric"),
    ("description: x\nphases: [1, 2]\n", "phases"),
    ("description: [unclosed\n", "not valid YAML"),
])
def test_a_malformed_study_names_the_file_and_the_field(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as error:
        load_study(path)
    assert path in str(error.value) and field in str(error.value)


def test_optimising_a_test_metric_must_be_said_in_the_file(tmp_path):
    study = load_study(write(tmp_path, GOOD + "metric: source/mAP\noptimise_test_metric: true\n"))
    assert study.metric == "source/mAP" and study.optimise_test_metric


@pytest.mark.parametrize("pair, words", [
    ("nope=1", ["--set", "unknown key 'nope'"]),
    ("retrain.bogus=1", ["--set", "'bogus' is not a settable phase field"]),
    ("data_dir=/x", ["--set", "unknown key 'data_dir'"]),
])
def test_an_unknown_override_is_refused(pair, words):
    with pytest.raises(StudyError) as error:
        load_study("smoke", overrides=parse_overrides([pair]))
    assert all(w in str(error.value) for w in words)


def test_unknown_study_lists_the_known_ones():
    with pytest.raises(StudyError, match="unknown study 'nope'.*Known studies: .*smoke"):
        load_study("nope")

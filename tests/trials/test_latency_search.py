"""The latency penalty of the architecture step: from the same seed and data, a search with λ > 0 ends with
a lower expected latency than the authors' search (λ = 0), and reports what it optimised."""

import pytest

from trials.config import ConfigError, make_config
from trials.runtime.session import LocalSession
from trials.search import run_search


def _config(root, out, **extra):
    return {"scale": "smoke", "dataset": "market1501", "data_dir": str(root), "out": str(out), "ids_per_batch": 4,
            "instances": 2, "epochs": 2, "eval_interval": 2, "iters_per_epoch": 4, "seed": 0, **extra}


@pytest.mark.slow
def test_a_latency_penalty_lowers_the_expected_latency_of_the_search(synthetic_root, tmp_path):
    plain = run_search(_config(synthetic_root, tmp_path / "plain"), LocalSession(tmp_path / "plain", verbose=False))
    aware = run_search(_config(synthetic_root, tmp_path / "aware", latency_weight=20.0),
                       LocalSession(tmp_path / "aware", verbose=False))
    assert aware["latency/expected_ms"] < plain["latency/expected_ms"]
    assert aware["latency/ms"] <= plain["latency/ms"]
    assert "loss/latency" in aware and "loss/latency" not in plain
    assert aware["latency/table"] == plain["latency/table"] and "256x128" in aware["latency/table"]


def test_latency_keys_are_checked_at_the_boundary(tmp_path):
    assert make_config("search", {}).latency_table_path.name == "cpu-256x128-b1.json"
    assert make_config("search", {"dataset": "veri"}).latency_table_path.name == "cpu-256x256-b1.json"
    with pytest.raises(ConfigError, match="latency_weight: expected a number >= 0"):
        make_config("search", {"latency_weight": -1})
    with pytest.raises(ConfigError, match="latency_table: expected a kept table .*cpu-256x128-b1"):
        make_config("search", {"latency_table": "tpu-v9"})
    with pytest.raises(ConfigError, match="latency_table"):
        make_config("search", {"latency_table": str(tmp_path / "missing.json")})

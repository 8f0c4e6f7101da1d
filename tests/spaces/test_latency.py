"""Operation cost tables: the kept tables are sound, the expected latency is the genotype's prediction at
one-hot weights, its gradient favours cheap operations, and a table measured here predicts whole networks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spaces import latency
from spaces.genotype import NUM_SLOTS, OPERATIONS, Genotype, random_genotype

KEPT = sorted(latency.TABLE_DIR.glob("*.json"))
ROOT = Path(__file__).resolve().parents[2]


def one_hot(genotype: Genotype) -> torch.Tensor:
    weights = torch.zeros(NUM_SLOTS, len(OPERATIONS))
    for slot, op in enumerate(genotype):
        weights[slot, OPERATIONS.index(op)] = 1.0
    return weights


@pytest.mark.parametrize("path", KEPT, ids=[p.stem for p in KEPT])
def test_kept_tables_are_sound_and_were_checked_where_they_were_made(path):
    table = latency.load_table(path.stem)
    assert table["key"] == latency.table_key(table)
    uniform = {op: latency.predict_ms(Genotype([op] * NUM_SLOTS), table) for op in OPERATIONS}
    assert uniform["none"] == pytest.approx(table["fixed_ms"])
    assert uniform["cross_att"] > uniform["ag"] > uniform["none"]  # what MACs cannot tell apart
    assert all(cost >= 0 for row in table["slot_ms"] for cost in row)
    check = table["check"]  # written by `python -m spaces.latency --check N` on the machine that measured it
    assert check["genotypes"] >= 12 and check["spearman"] >= 0.7 and check["mean_relative_error"] < 0.1


def test_kept_tables_cover_persons_and_vehicles_at_the_papers_sizes():
    assert {"cpu-256x128-b1", "cpu-256x256-b1"} <= {p.stem for p in KEPT}


def test_expected_latency_at_one_hot_weights_is_the_prediction_and_its_gradient_prefers_cheap_operations():
    table = latency.load_table("cpu-256x128-b1")
    for seed in range(5):
        genotype = random_genotype(seed)
        assert latency.expected_ms(one_hot(genotype), table).item() == pytest.approx(
            latency.predict_ms(genotype, table), rel=1e-5)
    alpha = torch.zeros(NUM_SLOTS, len(OPERATIONS), requires_grad=True)
    latency.latency_penalty(1.0, table)(torch.softmax(alpha, -1)).backward()
    costs = latency.cost_matrix(table)
    for slot in range(NUM_SLOTS):  # descending the gradient raises the cheapest operation, lowers the dearest
        assert alpha.grad[slot, costs[slot].argmin()] < 0 < alpha.grad[slot, costs[slot].argmax()]
    # λ is relative: at uniform weights the penalty is λ itself, whatever the device's milliseconds
    assert latency.latency_penalty(0.5, table)(torch.full((NUM_SLOTS, 4), 0.25)).item() == pytest.approx(0.5)


def test_bad_tables_are_named_with_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="kept tables: .*cpu-256x128-b1"):
        latency.load_table("no-such-table")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=f"{broken}, line 1: the latency table is not valid JSON"):
        latency.load_table(broken)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"fixed_ms": 1.0, "operations": list(OPERATIONS), "slot_ms": [[0, 0, 0, 0]]}))
    with pytest.raises(ValueError, match=f"{short}: expected fixed_ms, operations"):
        latency.load_table(short)


def test_slot_shapes_follow_the_network():
    shapes = latency.slot_shapes(256, 128, 2)
    assert shapes[0] == (2, 64, 64, 32) and shapes[4] == (2, 96, 32, 16) and shapes[11] == (2, 128, 16, 8)


def test_the_command_writes_a_table_and_refuses_a_missing_gpu(tmp_path):
    out = tmp_path / "table.json"
    done = subprocess.run([sys.executable, "-m", "spaces.latency", "--height", "64", "--width", "32", "--rounds",
                           "2", "--min-run-time", "0.01", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert latency.load_table(out)["height"] == 64 and f"wrote {out}" in done.stdout
    if not torch.cuda.is_available():
        done = subprocess.run([sys.executable, "-m", "spaces.latency", "--device", "cuda", "--out", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and done.stderr.startswith("error: --device 'cuda': CUDA is not available")


@pytest.mark.slow
def test_a_table_measured_here_ranks_whole_networks_as_measured():
    """The claim of a table: on the machine that made it, its sums order real networks' latencies."""
    device = torch.device("cpu")
    table = latency.measure_table(device, height=128, width=64, rounds=60, min_run_time=0.05)
    check = latency.check_table(table, latency.check_genotypes(12, seed=7), device, rounds=60)
    assert check["spearman"] > 0.5, check
    assert check["mean_relative_error"] < 0.25, check

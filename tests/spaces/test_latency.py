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
    assert check["genotypes"] >= 12 and latency.check_failures(table) == []
    assert check["spearman"] >= 0.7 and check["mean_relative_error"] < 0.1


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


@pytest.mark.slow
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
def test_a_table_whose_check_fails_is_not_written(tmp_path, capsys):
    """On a loaded machine every slot came out 0.00 ms, Spearman 0.000, and the table was written anyway."""
    table = {**latency.load_table("cpu-256x128-b1"), "height": 64, "width": 32}
    table["slot_ms"] = [[0.0] * len(OPERATIONS) for _ in range(NUM_SLOTS)]
    table["check"] = latency.check_table(table, latency.check_genotypes(4), torch.device("cpu"), rounds=2)
    out = tmp_path / "table.json"
    assert latency.refused(table, out) and not out.exists()
    error = capsys.readouterr().err
    assert error.startswith(f"error: {table['key']}: the check on 4 genotypes failed, so {out} was not written")
    for part in ("every slot costs 0.00 ms", "Spearman 0.000 < 0.7", "measured ", "predicted ",
                 "Measure on an idle machine", "more --rounds"):
        assert part in error, part
    passed = latency.load_table("cpu-256x256-b1")
    assert not latency.refused(passed, out) and capsys.readouterr().err == ""
    worse = {**passed, "check": {**passed["check"], "mean_relative_error": 0.4}}
    assert latency.check_failures(worse) == ["mean relative error 40.0% > 10% after the machine's drift (x1.00), "
                                             f"{passed['check']['raw_mean_relative_error']:.1%} before"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_table_is_measured_with_the_trials_cudnn_autotuning(tmp_path):
    out = tmp_path / "table.json"
    done = subprocess.run([sys.executable, "-m", "spaces.latency", "--device", "cuda", "--height", "64", "--width",
                           "32", "--rounds", "2", "--min-run-time", "0.01", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["cudnn_benchmark"] is True  # trials turn it on (configure_backends)


@pytest.mark.slow
def test_a_table_measured_here_ranks_whole_networks_as_measured():
    """The claim of a table: on the machine that made it, its sums order real networks' latencies. Table and
    check on one thread: with two, a machine busy with other work preempts one and the whole operation waits
    for it, which made this test's timings swing by multiples (the spearman 0.17 of a loaded run)."""
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        table = latency.measure_table(device, height=128, width=64, rounds=60, min_run_time=0.05)
        check = latency.check_table(table, latency.check_genotypes(12, seed=7), device, rounds=60)
    finally:
        torch.set_num_threads(threads)
    assert check["spearman"] > 0.5, check
    assert check["mean_relative_error"] < 0.25, check

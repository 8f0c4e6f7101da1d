"""The accuracy/latency section: fronts of the search (val/mAP against predicted latency) and of the
retrained networks (source/mAP against measured latency), and an honest word on predicted vs measured."""

import pandas as pd

from analysis.report_latency import latency_frames, latency_section


def runs(measured_at="256x128"):
    rows = []
    for i, (weight, mAP, ms) in enumerate([(0.0, 0.50, 45.0), (1.0, 0.45, 42.0), (2.0, 0.40, 43.0),
                                           (3.0, 0.30, 41.0)]):
        rows.append({"trial": f"search/{i}", "kind": "search", "phase": "search", "group": "tcm",
                     "status": "FINISHED", "genotype": f"g{i}", "params.latency_weight": str(weight),
                     "metrics.val/mAP": mAP, "metrics.latency/ms": ms, "metrics.latency/expected_ms": ms + 1})
    for i, (mAP, predicted, measured) in enumerate([(0.6, 45.0, 46.0), (0.5, 42.0, 43.0), (0.55, 43.0, 47.0),
                                                    (0.3, 41.0, 41.5)]):
        rows.append({"trial": f"retrain/{i}", "kind": "retrain", "phase": "retrain", "group": "tcm",
                     "status": "FINISHED", "genotype": f"g{i}", "metrics.source/mAP": mAP,
                     "metrics.latency/ms": predicted, "metrics.latency/b1_ms_per_image": measured,
                     "tags.msinet.latency_table": "AMD EPYC, 2 threads|float32|256x128|b1",
                     "tags.msinet.latency_measured_at": measured_at})
    rows.append({"trial": "search/failed", "kind": "search", "phase": "search", "status": "FAILED"})
    return pd.DataFrame(rows)


def test_fronts_are_marked_in_both_tables():
    search, retrained = latency_frames(runs())
    assert search.loc[search["on_front"], "trial"].tolist() == ["search/3", "search/1", "search/0"]
    assert retrained.loc[retrained["on_front"], "trial"].tolist() == ["retrain/3", "retrain/1", "retrain/0"]


def test_the_section_draws_the_fronts_and_ranks_measurements_only_at_the_tables_size(tmp_path):
    written = []
    lines = "\n".join(latency_section(tmp_path, runs(), written))
    assert "4 finished search trials with λ from 0 to 3" in lines and "Spearman 0.80" in lines
    assert (tmp_path / "latency_front.png").stat().st_size > 0 and tmp_path / "latency_search.csv" in written
    lines = "\n".join(latency_section(tmp_path, runs(measured_at="64x32"), []))
    assert "Measured at 64x32 (the training size), predicted at 256x128" in lines and "Spearman" not in lines


def test_without_a_latency_aware_search_the_section_says_so(tmp_path):
    plain = runs()
    plain["params.latency_weight"] = "0.0"
    plain = plain[plain["kind"] == "search"]
    assert latency_section(tmp_path, plain, [])[0].startswith("No latency-aware search")
    assert latency_section(tmp_path, plain.iloc[0:0], [])[0].startswith("No latency-aware search")


def test_only_like_is_compared_with_like(tmp_path):
    """A measurement on a shared device, or at another size or on another device, stays in the table but is
    neither on the measured front nor in the ranking of the table's predictions."""
    frame = runs()
    retrain = frame.index[frame["kind"] == "retrain"]
    frame.loc[retrain, "tags.msinet.latency_measured_on"] = "AMD EPYC, 2 threads"
    frame.loc[retrain, "tags.msinet.latency_shared"] = "no"
    frame.loc[retrain[3], "tags.msinet.latency_shared"] = "yes: 1 of the node's 2 CPUs (trials beside it)"
    frame.loc[retrain[3], "metrics.latency/b1_ms_per_image"] = 9.0  # the cheapest, but measured beside others
    frame.loc[retrain[2], "tags.msinet.latency_measured_on"] = "NVIDIA H200"
    _, retrained = latency_frames(frame)
    assert retrained.loc[retrained["comparable"], "trial"].tolist() == ["retrain/1", "retrain/0"]
    assert retrained.loc[retrained["on_front"], "trial"].tolist() == ["retrain/1", "retrain/0"]
    lines = "\n".join(latency_section(tmp_path, frame, []))
    assert ("against measured latency (ms per image at batch 1, 256x128 on AMD EPYC, 2 threads, no other trial "
            "beside it; 2 measurement(s) left out: 1 on a shared device, 1 at another size or on another device)"
            in lines)
    assert "2 measured latencies: too few to judge" in lines
    frame.loc[retrain, "tags.msinet.latency_shared"] = "yes: a 0.5 share of the GPU (packed trials)"
    lines = "\n".join(latency_section(tmp_path, frame, []))
    assert "against the table's predicted latency (every one was measured on a device other trials shared)" in lines

"""The retrain trial on tiny synthetic data: it learns, reports honestly, and resumes exactly."""

import math

import pytest
import torch

import spaces
from spaces.latency import device_name
from trials.config import make_config
from trials.data.splits import load_splits
from trials.evaluation.scoring import score_tests
from trials.retrain import run_retrain
from trials.runtime.session import LocalSession

pytestmark = pytest.mark.slow


def _config(root, out, **extra):
    return {"scale": "smoke", "dataset": "market1501", "data_dir": str(root), "out": str(out),
            "eval_interval": 1, "seed": 0, **extra}


def test_retrain_learns_far_beyond_the_untrained_network(synthetic_root, tmp_path):
    # The authors' random erasing (large, mostly tall boxes) slows learning at 64x32: 25 epochs reach source
    # mAP 0.25 (torchvision's erasing: 0.34), 40 epochs 0.33 (untrained: 0.15).
    config = _config(synthetic_root, tmp_path / "run", epochs=40, milestones=[32], eval_interval=10)
    final = run_retrain(config, LocalSession(config["out"], verbose=False))

    cfg = make_config("retrain", config)
    splits = load_splits(cfg)
    torch.manual_seed(0)
    untrained = spaces.build_msinet("msmt", splits.num_classes)
    before = score_tests(untrained, splits, cfg, torch.device("cpu"), workers=0)
    assert final["source/mAP"] > before["source/mAP"] + 0.15, (before["source/mAP"], final["source/mAP"])
    for key in ("val/mAP", "val/rank1", "source/rank1", "source/rank5", "source/rank10", "source/mINP",
                "params", "macs", "loss/ce_global", "loss/triplet_part"):
        assert key in final
    assert final["genotype"] == str(spaces.resolve_genotype("msmt"))
    assert (tmp_path / "run" / "checkpoint" / "model.pt").exists()
    # the measured latency says at what size and on what it was measured; standalone, nothing shared the device
    assert final["latency/measured_at"] == "64x32" and final["latency/shared"] == "no"
    assert final["latency/measured_on"] == device_name(torch.device("cpu"))


def test_the_device_resident_data_path_trains_exactly_as_the_loader(synthetic_root, tmp_path):
    """In-domain, the resident path draws the same numbers in the same order as the PIL transforms, so the
    batches, and with them the whole training, are the same."""
    runs = {}
    for path in ("loader", "resident"):
        config = _config(synthetic_root, tmp_path / path, epochs=2, data_path=path,
                         resident_cache=str(tmp_path / "cache"))
        runs[path] = run_retrain(config, LocalSession(config["out"], verbose=False))
    for key in ("loss", "loss/ce_global", "loss/triplet_part", "val/mAP", "source/mAP"):
        assert math.isclose(runs["loader"][key], runs["resident"][key], rel_tol=1e-4, abs_tol=1e-6), key
    assert list((tmp_path / "cache").glob("*.pt"))  # the decoded split, for the next trial on the node


def test_resume_ends_where_an_uninterrupted_run_ends(synthetic_root, tmp_path, stop_after):
    whole = run_retrain(_config(synthetic_root, tmp_path / "whole", epochs=4),
                        LocalSession(tmp_path / "whole", verbose=False))
    config = _config(synthetic_root, tmp_path / "cut", epochs=4)
    with pytest.raises(stop_after.Interrupted):
        run_retrain(config, stop_after(tmp_path / "cut", reports=2))
    session = LocalSession(tmp_path / "cut", verbose=False)
    resumed = run_retrain(config, session)
    assert [m["epoch"] for m in session.history] == [3, 4]
    for key in ("loss", "val/mAP", "source/mAP", "source/rank1", "lr"):
        assert math.isclose(resumed[key], whole[key], rel_tol=1e-6, abs_tol=1e-9), key


def test_sam_and_cross_domain_report_target_metrics(synthetic_root, tmp_path):
    config = _config(synthetic_root, tmp_path / "sam", epochs=1, sam_mode="pos_neg", target_dataset="veri")
    final = run_retrain(config, LocalSession(config["out"], verbose=False))
    assert "loss/sam" in final and math.isfinite(final["loss/sam"])
    assert 0.0 <= final["target/mAP"] <= 1.0


def test_random_genotype_is_drawn_from_the_seed(synthetic_root, tmp_path):
    config = _config(synthetic_root, tmp_path / "rnd", epochs=1, genotype="random", seed=5, val_fraction=0)
    final = run_retrain(config, LocalSession(config["out"], verbose=False))
    assert final["genotype"] == str(spaces.resolve_genotype("random:5"))
    assert not any(k.startswith("val/") for k in final)


def test_non_finite_loss_stops_with_a_clear_error(synthetic_root, tmp_path):
    from trials.runtime.divergence import NonFiniteLossError

    config = _config(synthetic_root, tmp_path / "nan", epochs=1, lr=1e30, warmup_epochs=0)
    with pytest.raises(NonFiniteLossError, match=r"(loss '.+' is|the weights became) (nan|inf|-inf) (after the step )?"
                       r"at epoch 1, iteration \d+ \(lr 1e\+30\)"):
        run_retrain(config, LocalSession(config["out"], verbose=False))


def test_weights_that_diverge_while_the_loss_looks_finite_are_caught():
    """BN running statistics can blow up while the (batch-normalised) loss stays finite; the check sees them."""
    from trials.runtime.divergence import NonFiniteLossError, check_finite

    model = spaces.build_msinet("msmt", 4)
    check_finite({"loss": torch.tensor(1.0)}, 3, 7, 0.1, [*model.parameters(), *model.buffers()])
    model.conv1.bn.running_var[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"the weights became (inf|nan) after the step at epoch 3, "
                                                 r"iteration 7 \(lr 0.1\); the losses were loss 1"):
        check_finite({"loss": torch.tensor(1.0)}, 3, 7, 0.1, [*model.parameters(), *model.buffers()])

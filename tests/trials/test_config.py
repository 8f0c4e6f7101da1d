"""Trial configs: the recipe's defaults, the smoke preset, and clear errors at the boundary."""

import pytest

from trials.config import ConfigError, make_config


def test_defaults_follow_the_paper():
    retrain = make_config("retrain")
    assert (retrain.lr, retrain.epochs, retrain.milestones, retrain.ids_per_batch, retrain.instances) == (
        0.065, 350, [150, 225, 300], 16, 4)
    assert retrain.image_size == (256, 128)
    search = make_config("search")
    assert (search.lr, search.arch_lr, search.arch_milestones) == (0.025, 2e-3, [150, 225, 350])


def test_vehicle_datasets_default_to_square_inputs():
    assert make_config("retrain", {"dataset": "veri"}).image_size == (256, 256)


def test_smoke_preset_then_user_values():
    cfg = make_config("retrain", {"scale": "smoke", "epochs": "3", "milestones": "2,3"})
    assert cfg.height == 64 and cfg.epochs == 3 and cfg.milestones == [2, 3]


@pytest.mark.parametrize("values, field", [
    ({"lerning_rate": 0.1}, "lerning_rate"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": "many"}, "epochs"),
    ({"sam_mode": "both"}, "sam_mode"),
    ({"supervision": "magic"}, "supervision"),
    ({"val_fraction": 0.95}, "val_fraction"),
    ({"amp": "perhaps"}, "amp"),
])
def test_bad_values_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        make_config("retrain", values)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean instances"):
        make_config("retrain", {"instance": 4})


def test_sam_is_a_retrain_option():
    with pytest.raises(ConfigError, match="sam_mode"):
        make_config("search", {"sam_mode": "pos"})

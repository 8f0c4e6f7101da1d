"""The derived MSINet: layout, heads, outputs, size and cost."""

import json
from pathlib import Path

import pytest
import torch

from spaces.cost import model_cost
from spaces.genotype import random_genotype
from spaces.msinet import Cell, MSINetOutput, build_msinet

REFERENCE = Path(__file__).parent / "reference" / "msinet_msmt_state_dict.json"


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    return torch.randn(4, 3, 64, 32)


def test_parameter_names_and_shapes_are_the_authors_checkpoint_layout():
    reference = json.loads(REFERENCE.read_text())
    model = build_msinet("msmt", 751, sam_mode="pos_neg")
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape in reference["state_dict"]]


def test_network_layout():
    model = build_msinet("msmt", 10)
    kinds = ["cell" if isinstance(c, Cell) else "down" for c in model.cells]
    assert kinds == ["cell", "cell", "down", "cell", "cell", "down", "cell", "cell"]
    # derived cells use out/4 branch widths; the first cell of each stage projects the residual
    assert [model.cells[i].conv1a.conv.out_channels for i in (0, 1, 3, 4, 6, 7)] == [64, 64, 96, 96, 128, 128]
    assert [model.cells[i].downsample is not None for i in (0, 1, 3, 4, 6, 7)] == [True, False] * 3
    # interaction modules follow the genotype: cell k uses genes 2k and 2k+1
    assert type(model.cells[1]._op2).__name__ == "Exchange"
    assert type(model.cells[3]._op2).__name__ == "CrossAttention"
    assert type(model.cells[4]._op3).__name__ == "Identity"


def test_bn_neck_biases_are_frozen():
    model = build_msinet("msmt", 10)
    assert not model.head.bias.requires_grad and not model.f_head.bias.requires_grad
    assert model.head.weight.requires_grad


def test_training_forward_gives_features_and_logits_for_both_heads(images):
    model = build_msinet("msmt", 10).train()
    out = model(images)
    assert isinstance(out, MSINetOutput)
    assert out.global_feat.shape == (4, 512) and out.global_logits.shape == (4, 10)
    assert out.part_feat.shape == (4, 256) and out.part_logits.shape == (4, 10)
    assert out.sam is None


def test_eval_forward_is_the_768d_concat_of_global_and_part_features(images):
    model = build_msinet("msmt", 10).train()
    model(images)  # give BN some statistics
    model.eval()
    with torch.no_grad():
        feat = model(images)
        last, part_map = model.feature_maps(images)
        part = model.f_conv(part_map)
        half = part.shape[2] // 2
        expected = torch.cat([last.mean(dim=(2, 3)), part[:, :, :half].mean(dim=(2, 3)),
                              part[:, :, half:].mean(dim=(2, 3))], dim=1)
    assert feat.shape == (4, 768)
    assert torch.allclose(feat, expected, atol=1e-5)


def test_training_features_are_pre_bn_and_logits_come_after_fc_then_bn(images):
    model = build_msinet("msmt", 10).train()
    with torch.no_grad():
        out = model(images)
        last, _ = model.feature_maps(images)  # train-mode BN: batch statistics, same result
        logits = model.classifier(model.head(model.fc(out.global_feat)))
        part_logits = model.f_classifier(model.f_head(model.f_fc(out.part_feat)))
    assert torch.allclose(out.global_feat, last.mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(out.global_logits, logits, atol=1e-5)
    assert torch.allclose(out.part_logits, part_logits, atol=1e-5)


def test_bn_neck_test_features(images):
    model = build_msinet("msmt", 10, test_neck=True)
    model.eval()
    with torch.no_grad():
        feat = model(images)
        model.test_neck = False
        plain = model(images)
        expected = torch.cat([model.head(model.fc(plain[:, :512])),
                              model.f_head(model.f_fc(plain[:, 512:]))], dim=1)
    assert feat.shape == (4, 768)
    assert torch.allclose(feat, expected, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_any_genotype_builds_and_runs(seed, images):
    model = build_msinet(random_genotype(seed), 5, sam_mode="pos")
    out = model(images)
    assert out.global_logits.shape == (4, 5) and out.sam is not None


def test_vehicle_models_expect_square_inputs():
    model = build_msinet("msmt", 5, vehicle=True)
    assert model.input_size == (3, 256, 256)
    assert model.eval()(torch.randn(2, 3, 64, 64)).shape == (2, 768)


def test_bad_sam_mode_is_rejected():
    with pytest.raises(ValueError, match="sam_mode"):
        build_msinet("msmt", 5, sam_mode="both")


def test_parameter_counts_match_the_paper():
    cost = model_cost(build_msinet("msmt", 751), input_size=(3, 64, 32))
    assert cost["params_no_classifier"] == 2_328_035
    assert cost["params"] == 2_906_305
    with_sam = model_cost(build_msinet("msmt", 751, sam_mode="pos_neg"), input_size=(3, 64, 32))
    assert with_sam["params"] == 2_971_969  # the reference layout's total (SAM adds 65,664)
    assert with_sam["params_no_classifier"] == 2_328_035


def test_inference_cost_is_about_1_15_gmac_at_256x128():
    cost = model_cost(build_msinet("msmt", 751))
    assert cost["macs"] == pytest.approx(1.15e9, rel=0.03)

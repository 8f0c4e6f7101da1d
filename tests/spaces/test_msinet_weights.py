"""Loading the authors' checkpoint layout, reporting what does not fit, and our own checkpoints."""

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spaces.msinet import build_from_checkpoint, build_msinet, load_checkpoint, load_weights, save_checkpoint
from spaces.operations import CrossAttention

REFERENCE = Path(__file__).parent / "reference" / "msinet_msmt_state_dict.json"
CLASSIFIER_KEYS = {"classifier.weight", "classifier.bias", "f_classifier.weight", "f_classifier.bias"}


def _random_reference_state_dict(seed=0):
    """Random tensors with exactly the keys and shapes of the authors' msmt / 751 / pos_neg checkpoint."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in json.loads(REFERENCE.read_text())["state_dict"]:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("gamma"):
            sd[key] = torch.full(shape, 0.5)
        elif len(shape) >= 2:
            fan_in = torch.Size(shape[1:]).numel()
            sd[key] = torch.randn(shape, generator=gen) / fan_in**0.5
        elif key.endswith(".weight"):  # BN scale
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            sd[key] = 0.1 * torch.randn(shape, generator=gen)
    return sd


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    sd = _random_reference_state_dict()
    path = tmp_path_factory.mktemp("ref") / "msinet_msmt.pth.tar"
    torch.save({"state_dict": sd}, path)
    return path, sd


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 32)


# ------------------------------------------------------ an independent functional reading of the network


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def _conv_bn(x, sd, p, relu=True, **kw):
    x = _bn(F.conv2d(x, sd[f"{p}.conv.weight"], **kw), sd, f"{p}.bn")
    return F.relu(x) if relu else x


def _light(x, sd, p):
    depthwise = sd[f"{p}.conv2.weight"]
    x = F.conv2d(F.conv2d(x, sd[f"{p}.conv1.weight"]), depthwise, padding=1, groups=depthwise.shape[0])
    return F.relu(_bn(x, sd, f"{p}.bn"))


def _interaction(name, a, b, sd, p):
    if name == "none":
        return a, b
    if name == "exc":
        return b, a
    if name == "ag":
        def gate(t):
            h = F.relu(F.conv2d(t.mean(dim=(2, 3), keepdim=True), sd[f"{p}.fc1.weight"], sd[f"{p}.fc1.bias"]))
            return torch.sigmoid(F.conv2d(h, sd[f"{p}.fc2.weight"], sd[f"{p}.fc2.bias"]))
        return a * gate(a), b * gate(b)
    gamma = sd[f"{p}.gamma"]

    def attend(q, k):
        qf, kf = q.flatten(2), k.flatten(2)
        energy = torch.einsum("bcn,bdn->bcd", qf, kf)
        attention = torch.softmax(energy.max(dim=-1, keepdim=True).values - energy, dim=-1)
        return gamma * torch.einsum("bcd,bdn->bcn", attention, qf).view_as(q) + q
    return attend(a, b), attend(b, a)


def _cell(x, sd, p, ops):
    a, b = _conv_bn(x, sd, f"{p}.conv1a"), _conv_bn(x, sd, f"{p}.conv1b")
    for step, op in ((2, ops[0]), (3, ops[1])):
        a = _light(a, sd, f"{p}.conv{step}a")
        for i in range(3):
            b = _light(b, sd, f"{p}.conv{step}b.{i}")
        a, b = _interaction(op, a, b, sd, f"{p}._op{step}")
    identity = _conv_bn(x, sd, f"{p}.downsample", relu=False) if f"{p}.downsample.conv.weight" in sd else x
    return F.relu(_conv_bn(a, sd, f"{p}.conv4a", relu=False) + _conv_bn(b, sd, f"{p}.conv4b", relu=False)
                  + identity)


def _functional_test_feature(sd, ops, x):
    x = F.max_pool2d(_conv_bn(x, sd, "conv1", stride=2, padding=3), 3, stride=2, padding=1)
    k = 0
    for i in range(8):
        if i in (2, 5):
            x = F.avg_pool2d(_conv_bn(x, sd, f"cells.{i}.0"), 2)
            if i == 5:
                part_map = x
        else:
            x = _cell(x, sd, f"cells.{i}", ops[2 * k: 2 * k + 2])
            k += 1
    part = F.conv2d(part_map, sd["f_conv.weight"], sd["f_conv.bias"])
    h = part.shape[2] // 2
    stripes = [part[:, :, :h].mean(dim=(2, 3)), part[:, :, h:].mean(dim=(2, 3))]
    return torch.cat([x.mean(dim=(2, 3)), *stripes], dim=1)


# ------------------------------------------------------ tests


def test_the_authors_layout_loads_key_by_key_with_nothing_left_over(reference_file):
    path, sd = reference_file
    model = build_msinet("msmt", 751, sam_mode="pos_neg")
    report = load_weights(model, path)
    assert report.clean
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert len(report.loaded) == 565
    for key, value in model.state_dict().items():
        assert torch.equal(value, sd[key]), key


def test_loaded_model_computes_the_functional_reading_of_the_checkpoint(reference_file, images):
    path, sd = reference_file
    ops = json.loads(REFERENCE.read_text())["genotype"]
    model = build_msinet("msmt", 751, sam_mode="pos_neg")
    load_weights(model, path)
    with torch.no_grad():
        ours = model.eval()(images)
        expected = _functional_test_feature(sd, ops, images)
    assert ours.shape == (2, 768)
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_two_models_loaded_from_the_same_file_agree(reference_file, images):
    path, _ = reference_file
    first, second = build_msinet("msmt", 751), build_msinet("msmt", 751)
    load_weights(first, path)
    load_weights(second, path)
    with torch.no_grad():
        assert torch.equal(first.eval()(images), second.eval()(images))


def test_dataparallel_prefix_is_stripped(tmp_path, reference_file):
    _, sd = reference_file
    path = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    report = load_weights(build_msinet("msmt", 751, sam_mode="pos_neg"), path)
    assert report.clean and len(report.loaded) == 565


def test_a_different_head_size_is_reported_and_the_rest_loads(reference_file, caplog):
    path, sd = reference_file
    model = build_msinet("msmt", 10, sam_mode="pos_neg")
    with caplog.at_level(logging.WARNING, logger="spaces.msinet"):
        report = load_weights(model, path)
    assert {key for key, _, _ in report.mismatched} == CLASSIFIER_KEYS
    assert ("classifier.weight", (751, 512), (10, 512)) in report.mismatched
    assert report.missing == [] and report.unexpected == []
    assert len(report.loaded) == 565 - 4
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    assert "classifier.weight: file [751, 512] vs model [10, 512]" in str(report)
    assert "shape-mismatched" in caplog.text
    with pytest.raises(ValueError, match="shape mismatch"):
        load_weights(build_msinet("msmt", 10), path, strict=True)


def test_sam_weights_are_reported_as_unexpected_for_a_model_without_sam(reference_file):
    path, _ = reference_file
    report = load_weights(build_msinet("msmt", 751), path)
    sam_keys = [k for k in _random_reference_state_dict() if k.startswith("align_module.")]
    assert sorted(report.unexpected) == sorted(sam_keys) and len(sam_keys) == 4
    assert "unexpected in file (ignored): align_module.pos_pam.query_conv.weight" in str(report)


def test_missing_keys_are_reported(reference_file):
    _, sd = reference_file
    partial = {k: v for k, v in sd.items() if not k.startswith("f_")}
    report = load_weights(build_msinet("msmt", 751, sam_mode="pos_neg"), {"state_dict": partial})
    assert all(k.startswith("f_") for k in report.missing) and len(report.missing) == 10


def test_a_file_without_a_state_dict_is_rejected(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ValueError, match="state_dict"):
        load_weights(build_msinet("msmt", 5), path)


def test_our_checkpoint_round_trips(tmp_path, images):
    model = build_msinet("random:4", 7, sam_mode="pos", test_neck=True)
    model.train()
    model(images)  # move BN statistics away from their initial values
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CrossAttention):
                module.gamma.fill_(0.3)
    path = tmp_path / "ckpt" / "model.pth"
    save_checkpoint(model, path, epoch=12, metrics={"val/mAP": 0.5})
    raw = load_checkpoint(path)
    assert raw["genotype"] == str(model.genotype) and raw["num_classes"] == 7 and raw["sam_mode"] == "pos"
    assert raw["epoch"] == 12 and raw["metrics"] == {"val/mAP": 0.5}

    rebuilt = build_from_checkpoint(path)
    assert rebuilt.genotype == model.genotype and rebuilt.test_neck and rebuilt.sam_mode == "pos"
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(images), model.eval()(images))


def test_build_from_checkpoint_needs_our_format(reference_file):
    path, _ = reference_file
    with pytest.raises(ValueError, match="not an MSINet checkpoint"):
        build_from_checkpoint(path)

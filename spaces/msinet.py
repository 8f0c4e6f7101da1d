"""MSINet, the multi-scale interaction network derived from a genotype (Gu et al., CVPR 2023).

Module and parameter names follow the authors' released checkpoint layout (see
``tests/spaces/reference/msinet_msmt_state_dict.json``), so their ImageNet-pretrained file loads key by key with
:func:`load_weights`. The builder, weight loading and our own checkpoint format sit beside the network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spaces.genotype import NUM_CELLS, Genotype, resolve_genotype
from spaces.operations import Pair, build_operation
from spaces.sam import SAM_MODES, SAMScores, SpatialAlignModule

logger = logging.getLogger(__name__)

CHANNELS: tuple[int, ...] = (64, 256, 384, 512)
PART_CHANNELS = 128  # each of the two part stripes; the part feature is 2 x 128 = 256-d


# ---------------------------------------------------------------- basic layers


class ConvBNReLU(nn.Module):
    """Convolution (no bias) + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv1x1BN(nn.Module):
    """1x1 convolution + BN without non-linearity: the branch fusion and the residual projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """Light 3x3: linear 1x1 conv, depthwise 3x3 conv, BN, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


def _light_stack(channels: int, depth: int) -> nn.Module:
    return LightConv3x3(channels) if depth == 1 else nn.Sequential(*(LightConv3x3(channels)
                                                                     for _ in range(depth)))


def stage_downsample(channels: int) -> nn.Sequential:
    """Between stages: 1x1 conv-BN-ReLU then 2x2 average pooling."""
    return nn.Sequential(ConvBNReLU(channels, channels), nn.AvgPool2d(2, stride=2))


# ---------------------------------------------------------------- cell


class Cell(nn.Module):
    """Two branches (one and three light 3x3 per step), two steps each followed by an interaction.

    ``op2``/``op3`` are the interaction modules after step 1 and step 2. In the derived network they are
    single operations; the supernet passes mixed operations and their slot weights to :meth:`forward`.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, op2: nn.Module,
                 op3: nn.Module) -> None:
        super().__init__()
        self.conv1a = ConvBNReLU(in_channels, mid_channels)
        self.conv1b = ConvBNReLU(in_channels, mid_channels)
        self.conv2a = _light_stack(mid_channels, 1)
        self.conv2b = _light_stack(mid_channels, 3)
        self._op2 = op2
        self.conv3a = _light_stack(mid_channels, 1)
        self.conv3b = _light_stack(mid_channels, 3)
        self._op3 = op3
        self.conv4a = Conv1x1BN(mid_channels, out_channels)
        self.conv4b = Conv1x1BN(mid_channels, out_channels)
        self.downsample = Conv1x1BN(in_channels, out_channels) if in_channels != out_channels else None

    @staticmethod
    def _interact(op: nn.Module, pair: Pair, weights: Tensor | None) -> Pair:
        return op(pair) if weights is None else op(pair, weights)

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:
        """``weights``: the (2, num_ops) mixing weights of this cell's slots (supernet only)."""
        w2, w3 = (None, None) if weights is None else (weights[0], weights[1])
        a, b = self.conv1a(x), self.conv1b(x)
        a, b = self._interact(self._op2, (self.conv2a(a), self.conv2b(b)), w2)
        a, b = self._interact(self._op3, (self.conv3a(a), self.conv3b(b)), w3)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv4a(a) + self.conv4b(b) + identity)


def cell_layout(channels: Sequence[int] = CHANNELS) -> list[tuple[int, int] | int]:
    """The entries of ``cells``: (in, out) for a cell, an int (the width) for a stage downsample block."""
    layout: list[tuple[int, int] | int] = []
    for stage in range(3):
        c_in, c_out = channels[stage], channels[stage + 1]
        layout += [(c_in, c_out), (c_out, c_out)]
        if stage < 2:
            layout.append(c_out)
    return layout


def init_weights(model: nn.Module) -> None:
    """The authors' initialisation: Kaiming (fan-out) convs, unit BN, N(0, 0.01) linears, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- network


class MSINetOutput(NamedTuple):
    """Training-mode output. Features are pre-BN (for the triplet loss), logits feed the CE losses;
    ``sam`` is None without SAM, else the input of :func:`spaces.sam.sam_loss`."""

    global_feat: Tensor  # (B, 512) GAP of the last stage
    global_logits: Tensor  # (B, num_classes)
    part_feat: Tensor  # (B, 256) upper and lower stripe of the part map
    part_logits: Tensor  # (B, num_classes)
    sam: SAMScores | None


def _bn_neck(features: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(features)
    bn.bias.requires_grad_(False)
    return bn


class MSINet(nn.Module):
    """The derived network: stem, three stages of two cells, a global head and a two-stripe part head.

    Eval mode returns the 768-d test feature: concat(global 512, part 256), pre-BN by default or the
    BN-neck versions when ``test_neck`` is set (used for cross-domain testing).
    """

    def __init__(self, genotype: Genotype | str, num_classes: int, sam_mode: str = "none",
                 vehicle: bool = False, test_neck: bool = False,
                 channels: Sequence[int] = CHANNELS) -> None:
        super().__init__()
        if sam_mode not in SAM_MODES:
            raise ValueError(f"sam_mode must be one of {SAM_MODES}, got {sam_mode!r}")
        self.genotype = genotype = resolve_genotype(genotype)
        self.num_classes = num_classes
        self.sam_mode = sam_mode
        self.vehicle = vehicle
        self.test_neck = test_neck
        self.input_size = (3, 256, 256) if vehicle else (3, 256, 128)

        self.conv1 = ConvBNReLU(3, channels[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.cells = nn.ModuleList()
        k = 0
        for entry in cell_layout(channels):
            if isinstance(entry, int):
                self.cells.append(stage_downsample(entry))
                continue
            c_in, c_out = entry
            mid = c_out // 4
            op2, op3 = genotype.cell(k)
            self.cells.append(Cell(c_in, c_out, mid, build_operation(op2, mid), build_operation(op3, mid)))
            k += 1
        assert k == NUM_CELLS
        self.part_index = 5  # the downsample block after stage 2 feeds the part branch

        self.gap = nn.AdaptiveAvgPool2d(1)
        # Registration order (BN before FC) matches the authors' key order; the forward is FC then BN.
        self.head = _bn_neck(channels[-1])
        self.fc = nn.Linear(channels[-1], channels[-1], bias=False)
        self.classifier = nn.Linear(channels[-1], num_classes)

        self.f_conv = nn.Conv2d(channels[-2], PART_CHANNELS, 1)
        self.f_head = _bn_neck(2 * PART_CHANNELS)
        self.f_fc = nn.Linear(2 * PART_CHANNELS, 2 * PART_CHANNELS, bias=False)
        self.f_classifier = nn.Linear(2 * PART_CHANNELS, num_classes)

        if sam_mode != "none":
            self.align_module = SpatialAlignModule(channels[-1])
        init_weights(self)

    def feature_maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The last-stage map and the map that feeds the part branch."""
        x = self.maxpool(self.conv1(x))
        part_map = x
        for index, cell in enumerate(self.cells):
            x = cell(x)
            if index == self.part_index:
                part_map = x
        return x, part_map

    def forward(self, x: Tensor) -> MSINetOutput | Tensor:
        last, part_map = self.feature_maps(x)
        global_feat = self.gap(last).flatten(1)
        part = self.f_conv(part_map)
        half = part.shape[2] // 2
        part_feat = torch.cat([self.gap(part[:, :, :half]).flatten(1),
                               self.gap(part[:, :, half:]).flatten(1)], dim=1)

        if not self.training and not self.test_neck:
            return torch.cat([global_feat, part_feat], dim=1)
        global_neck = self.head(self.fc(global_feat))
        part_neck = self.f_head(self.f_fc(part_feat))
        if not self.training:
            return torch.cat([global_neck, part_neck], dim=1)

        sam = self.align_module(last) if self.sam_mode != "none" else None
        return MSINetOutput(global_feat, self.classifier(global_neck), part_feat,
                            self.f_classifier(part_neck), sam)


def build_msinet(genotype: Genotype | str, num_classes: int, sam_mode: str = "none", vehicle: bool = False,
                 test_neck: bool = False) -> MSINet:
    """MSINet for a genotype (anything :func:`resolve_genotype` accepts) and a number of training ids.

    ``sam_mode``: none / pos / neg / pos_neg (adds the SAM module, training only). ``vehicle``: the model
    expects 256x256 inputs (16x16 last map) instead of 256x128; the network itself is size-agnostic.
    ``test_neck``: eval-mode features are the BN-neck versions (cross-domain testing).
    """
    return MSINet(resolve_genotype(genotype), num_classes, sam_mode=sam_mode, vehicle=vehicle,
                  test_neck=test_neck)


# ---------------------------------------------------------------- weights and checkpoints


@dataclass
class LoadReport:
    """What a weights file did to a model; nothing that did not fit is dropped without being listed."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every key of the file and of the model was loaded."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"weights from {self.source}: {len(self.loaded)} tensors loaded, "
                 f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                 f"{len(self.mismatched)} shape-mismatched"]
        lines += [f"  shape mismatch (kept the model's): {key}: file {list(theirs)} vs model {list(ours)}"
                  for key, theirs, ours in self.mismatched]
        lines += [f"  missing from file (kept the model's): {key}" for key in self.missing]
        lines += [f"  unexpected in file (ignored): {key}" for key in self.unexpected]
        return "\n".join(lines)


def _strip_prefixes(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove wrappers' prefixes (DataParallel's ``module.``, torch.compile's ``_orig_mod.``)."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def extract_state_dict(obj: Any) -> dict[str, Tensor]:
    """The state dict inside a loaded file: ``{"state_dict": ...}`` (authors' and ours) or a bare one."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError("weights file holds neither {'state_dict': ...} nor a plain state dict of tensors")
    return _strip_prefixes(obj)


def load_weights(model: nn.Module, source: str | Path | Mapping[str, Any], device: str | torch.device = "cpu",
                 strict: bool = False) -> LoadReport:
    """Copy every tensor whose name and shape fit into ``model`` and report the rest.

    ``source``: a path to a file (authors' ``{"state_dict": ...}``, ours, or a bare state dict) or an
    already-loaded dict. With ``strict`` anything that did not fit raises ValueError after the report.
    """
    if isinstance(source, str | Path):
        name = str(source)
        obj = torch.load(source, map_location=device, weights_only=True)
    else:
        name, obj = "<state dict>", source
    theirs = extract_state_dict(obj)
    ours = model.state_dict()
    report = LoadReport(source=name)
    to_load = {}
    for key, value in theirs.items():
        if key not in ours:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(ours[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(ours[key].shape)))
        else:
            to_load[key] = value
            report.loaded.append(key)
    report.missing = [key for key in ours if key not in theirs]
    model.load_state_dict(to_load, strict=False)
    if report.clean:
        logger.info("%s", report)
    else:
        logger.warning("%s", report)
        if strict:
            raise ValueError(str(report))
    return report


def save_checkpoint(model: MSINet, path: str | Path, genotype: Genotype | str | None = None,
                    **extra: Any) -> None:
    """Write weights plus everything needed to rebuild the network (genotype, head size, SAM mode).

    ``extra`` (epoch, metrics, ...) must be plain Python values or tensors: files are read back with
    ``torch.load(weights_only=True)``.
    """
    genotype = resolve_genotype(genotype) if genotype is not None else model.genotype
    state = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "genotype": str(genotype),
        "num_classes": model.num_classes,
        "sam_mode": model.sam_mode,
        "vehicle": model.vehicle,
        "test_neck": model.test_neck,
        **extra,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw contents of a checkpoint written by :func:`save_checkpoint`."""
    return torch.load(path, map_location=device, weights_only=True)


def build_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> MSINet:
    """Rebuild the network described inside one of our checkpoints and load its weights exactly."""
    checkpoint = load_checkpoint(path, device)
    if "genotype" not in checkpoint or "num_classes" not in checkpoint:
        raise ValueError(f"{path} is not an MSINet checkpoint of this project (no genotype/num_classes); "
                         "build the model with build_msinet and use load_weights instead")
    model = build_msinet(checkpoint["genotype"], checkpoint["num_classes"],
                         sam_mode=checkpoint.get("sam_mode", "none"),
                         vehicle=checkpoint.get("vehicle", False),
                         test_neck=checkpoint.get("test_neck", False)).to(device)
    load_weights(model, checkpoint, device=device, strict=True)
    return model

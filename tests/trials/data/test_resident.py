"""The device-resident data path: images decoded once exactly as the PIL path resizes them, the same PK order
and seeds, and augmentation with the PIL path's distributions (pixel-exact where the draws are the same)."""

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision import transforms as T

from trials.config import make_config
from trials.data import load_dataset
from trials.data import resident as resident_module
from trials.data.batch_augment import BatchAugment, augment_batch, draw_params
from trials.data.batches import training_batches
from trials.data.images import read_image
from trials.data.loaders import BatchStream, train_loader
from trials.data.resident import ResidentLoader, decode_split
from trials.data.transforms import ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD

SIZE = (64, 32)
CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[3]


def _train(root):
    return load_dataset("market1501", root).train


def test_decoding_is_the_pil_resize_pixel_for_pixel(synthetic_root, tmp_path):
    samples = _train(synthetic_root)[:12]
    images, rows = decode_split(samples, SIZE, cache_dir=tmp_path)
    reference = torch.stack([T.PILToTensor()(T.Resize(SIZE)(read_image(s.path))) for s in samples])
    assert images.dtype == torch.uint8 and torch.equal(images[rows], reference)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    cached, cached_rows = decode_split(samples, SIZE, cache_dir=tmp_path)  # the next trial reads the cache
    assert torch.equal(cached[cached_rows], reference)


def test_in_domain_augmentation_equals_the_pil_steps_with_the_same_draws(synthetic_root):
    samples = _train(synthetic_root)[:16]
    images, rows = decode_split(samples, SIZE)
    images = images[rows]
    seeds = list(range(1000, 1016))
    out = augment_batch(images, seeds, cross_domain=False)
    params = draw_params(seeds, *SIZE, pad=2, cross_domain=False, erasing=True)
    normalise = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    for i, sample in enumerate(samples):
        image = T.Resize(SIZE)(read_image(sample.path))
        if params["flip"][i]:
            image = T.functional.hflip(image)
        image = T.Pad(2)(image)
        top, left = int(params["top"][i]), int(params["left"][i])
        expected = normalise(T.ToTensor()(T.functional.crop(image, top, left, *SIZE)))
        btop, bleft, h, w = (int(v) for v in params["box"][i])
        for c in range(3):
            expected[c, btop:btop + h, bleft:bleft + w] = ERASING_FILL[c]
        assert torch.allclose(out[i], expected, atol=1e-6), i


def test_augmentation_statistics_match_the_recipe():
    seeds = list(range(4000))
    params = draw_params(seeds, 256, 128, pad=10, cross_domain=False, erasing=True)
    assert 0.47 < params["flip"].float().mean() < 0.53
    assert params["top"].min() == 0 and params["top"].max() == 20 and abs(params["top"].float().mean() - 10) < 0.5
    box = params["box"].float()
    erased = box[:, 2] > 0
    area = box[erased, 2] * box[erased, 3] / (256 * 128)
    assert 0.47 < erased.float().mean() < 0.53
    assert 0.185 < area.mean() < 0.215 and area.max() <= 0.405
    jitter = draw_params(seeds[:2000], 256, 128, pad=10, cross_domain=True, erasing=False)["jitter"]
    for column, spread in enumerate((0.4, 0.4, 0.3)):
        assert jitter[:, column].min() >= 1 - spread and jitter[:, column].max() <= 1 + spread
        assert abs(jitter[:, column].mean() - 1) < 0.02


def test_cross_domain_batches_are_jittered_not_erased(synthetic_root):
    images = decode_split(_train(synthetic_root)[:8], SIZE)[0]
    out = augment_batch(images, list(range(8)), cross_domain=True)
    fill = torch.tensor(ERASING_FILL)[:, None, None]
    assert out.shape == (8, 3, *SIZE) and torch.isfinite(out).all()
    assert not any(((out[i] == fill).all(dim=0)).any() for i in range(8))


def test_in_domain_batches_equal_the_pil_loaders(synthetic_root):
    samples = _train(synthetic_root)
    resident = ResidentLoader(samples, SIZE, 4, 2, seed=5, device=CPU, cross_domain=False)
    reference = train_loader(samples, SIZE, 4, 2, 5, workers=0, cross_domain=False, pin_memory=False)
    for loader in (resident, reference):
        loader.sampler.set_epoch(1)
    for ours, theirs in itertools.islice(zip(resident, reference, strict=True), 3):
        assert torch.allclose(ours[0], theirs[0], atol=1e-6)  # the same draws, in the same order


def test_the_resident_loader_follows_the_pk_order_and_resumes_exactly(synthetic_root):
    samples = _train(synthetic_root)
    resident = ResidentLoader(samples, SIZE, 4, 2, seed=3, device=CPU, cross_domain=False)
    reference = train_loader(samples, SIZE, 4, 2, 3, workers=0, cross_domain=False, pin_memory=False)
    for loader in (resident, reference):
        loader.sampler.set_epoch(2)
    for ours, theirs in zip(resident, reference, strict=True):
        assert torch.equal(ours[3], theirs[3]) and torch.equal(ours[1], theirs[1])  # same images, same ids
        assert ours[0].shape == theirs[0].shape
    stream = BatchStream(resident)
    for _ in range(3):
        next(stream)
    state = stream.state()
    ahead = [next(stream)[0] for _ in range(4)]
    restored = BatchStream(ResidentLoader(samples, SIZE, 4, 2, seed=3, device=CPU, cross_domain=False))
    restored.load_state(state)
    assert all(torch.equal(a, next(restored)[0]) for a in ahead)


def _pil_batches(samples, seed, epoch, count, cross_domain=False):
    reference = train_loader(samples, SIZE, 4, 2, seed, workers=0, cross_domain=cross_domain, pin_memory=False)
    reference.sampler.set_epoch(epoch)
    return list(itertools.islice(reference, count))


def test_reordered_and_duplicated_lists_read_the_right_image_in_every_row(synthetic_root, tmp_path):
    """The decoded files are cached once per set of files; a list in another order (another seed's halving
    order) or with a file twice must still pair every row with its own image (it read the first list's rows)."""
    samples = _train(synthetic_root)
    lists = {"original": samples, "reversed": samples[::-1],
             "duplicated": samples[:40] + samples[:7] + samples[40:]}
    for name, listed in lists.items():
        images, rows = decode_split(listed, SIZE, cache_dir=tmp_path / "cache")
        assert len(rows) == len(listed), name
        for i in (0, 3, 40, 44, 46, len(listed) - 1):
            expected = T.PILToTensor()(T.Resize(SIZE)(read_image(listed[i].path)))
            assert torch.equal(images[rows[i]], expected), (name, i)
        resident = ResidentLoader(listed, SIZE, 4, 2, seed=1, device=CPU, cross_domain=False,
                                  cache_dir=tmp_path / "cache")
        resident.sampler.set_epoch(0)
        for ours, theirs in zip(resident, _pil_batches(listed, 1, 0, 4), strict=False):
            assert torch.equal(ours[3], theirs[3]) and torch.equal(ours[1], theirs[1]), name
            assert torch.allclose(ours[0], theirs[0], atol=1e-6), name
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # one set of files, decoded once


@pytest.mark.slow
def test_decoding_holds_the_images_once_and_follows_the_cpu_share(tmp_path):
    """Decoded straight into one preallocated uint8 tensor: the peak host memory of decoding is the images
    and little more (a list of arrays, their stack and a permuted copy held 3x). Outside Ray the trial's CPUs
    are its affinity (taskset, a container), not 2 x os.cpu_count()."""
    script = f"""
import os, resource
import numpy as np
from PIL import Image
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
from trials.data.datasets import Sample
from trials.data.resident import decode_split
from trials.runtime.device import loader_workers, trial_cpus
paths = []
for i in range(160):
    paths.append({str(tmp_path)!r} + f"/{{i}}.png")
    Image.fromarray(np.full((64, 32, 3), i, dtype=np.uint8)).save(paths[-1])
samples = [Sample(p, i, 0) for i, p in enumerate(paths)]
decode_split(samples[:2], (512, 256))  # imports, allocator and thread pool warmed up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
images, rows = decode_split(samples, (512, 256))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
assert int(images[rows][37, 0, 5, 5]) == 37
print(trial_cpus(), loader_workers(None), grown / images.numel())
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cpus, workers, grown = done.stdout.split()
    assert (cpus, workers) == ("1", "0")
    assert float(grown) < 1.5  # 63 MB of images; the old decoding peaked near 3x


def test_decoding_uses_the_trials_cpus_as_threads(synthetic_root, monkeypatch):
    sizes = []

    class Recorded(resident_module.ThreadPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(resident_module, "ThreadPoolExecutor", Recorded)
    monkeypatch.setattr(resident_module, "trial_cpus", lambda: 3)
    decode_split(_train(synthetic_root)[:4], SIZE)
    assert sizes == [3]


def test_cross_domain_resident_batches_accept_torchvision_erasing(synthetic_root, tmp_path):
    """Cross-domain training erases nothing in either path, so `erasing: torchvision` (valid for the loader
    path) is valid for the resident one too; it failed at the first batch."""
    cfg = make_config("retrain", {"scale": "smoke", "data_dir": str(synthetic_root), "target_dataset": "veri",
                                  "data_path": "resident", "erasing": "torchvision", "ids_per_batch": 4,
                                  "instances": 2})
    samples = _train(synthetic_root)
    loader = training_batches(samples, cfg, 0, 0, CPU)
    loader.sampler.set_epoch(0)
    inputs, pids, *_ = next(iter(loader))
    authors = ResidentLoader(samples, cfg.image_size, 4, 2, seed=0, device=CPU, cross_domain=True)
    authors.sampler.set_epoch(0)
    expected, expected_pids, *_ = next(iter(authors))
    assert torch.equal(inputs, expected) and torch.equal(pids, expected_pids)
    with pytest.raises(ValueError, match="authors' erasing only"):  # in-domain it would erase: refused
        ResidentLoader(samples, SIZE, 4, 2, seed=0, device=CPU, cross_domain=False, erasing="torchvision")


def test_batched_colour_jitter_is_torchvisions_per_image_in_the_drawn_order():
    images = torch.randint(0, 256, (12, 3, *SIZE), dtype=torch.uint8)
    seeds = list(range(300, 312))
    out = augment_batch(images, seeds, cross_domain=True, padding=0)
    params = draw_params(seeds, *SIZE, pad=0, cross_domain=True, erasing=False)
    normalise = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    gray = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    for i in range(len(seeds)):
        x = images[i].float() / 255
        if params["flip"][i]:
            x = x.flip(-1)
        for op in params["order"][i].tolist():
            f = float(params["jitter"][i, op])
            grey = (x * gray).sum(0, keepdim=True)
            reference = (0.0, grey.mean(), grey)[op]
            x = (f * x + (1 - f) * reference).clamp(0, 1)  # torchvision's _blend, the PIL path's luma weights
        assert torch.allclose(out[i], normalise(x), atol=1e-5), i
    assert {tuple(o) for o in params["order"].tolist()} != {(0, 1, 2)}  # the orders really differ


@pytest.mark.parametrize("cross_domain", [False, True])
def test_batch_augmentation_is_one_graph_from_one_copy_of_the_draws(synthetic_root, cross_domain):
    """The pixel work takes the batch's draws as one device tensor and builds nothing from host data per
    batch (no constants copied, no host read-back): torch.compile traces it whole, and it equals eager."""
    images = decode_split(_train(synthetic_root)[:8], SIZE)[0]
    augment = BatchAugment(*SIZE, CPU, cross_domain)
    draws = augment.to_device(augment.draws(list(range(8))))
    with _Ops() as ops:
        eager = augment.apply(images, draws)
    assert not {"aten.lift_fresh.default", "copy to a device", "aten.nonzero.default", "aten.item.default",
                "aten._local_scalar_dense.default"} & set(ops.names)
    graph = torch.compile(augment.apply, backend="eager", fullgraph=True)
    assert torch.equal(graph(images, draws), eager)
    assert torch.equal(eager, augment_batch(images, list(range(8)), cross_domain))


class _Ops(TorchDispatchMode):
    """The names of the aten operations run inside it; a dtype conversion that also names a device is
    "copy to a device"."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        moves = str(func) == "aten._to_copy.default" and (kwargs or {}).get("device") is not None
        self.names.append("copy to a device" if moves else str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_resident_images_and_draws_are_in_pinned_memory_on_cuda(synthetic_root):
    samples = _train(synthetic_root)
    cuda = torch.device("cuda")
    pinned = ResidentLoader(samples, SIZE, 4, 2, seed=0, device=cuda, cross_domain=False, pinned=True)
    assert pinned.images.device.type == "cpu" and pinned.images.is_pinned()  # it pinned only on CPU devices
    assert pinned.augment.draws(list(range(8))).is_pinned()
    resident = ResidentLoader(samples, SIZE, 4, 2, seed=0, device=cuda, cross_domain=False)
    assert resident.images.device.type == "cuda"
    for loader in (pinned, resident):
        loader.sampler.set_epoch(0)
    for ours, theirs in itertools.islice(zip(pinned, resident, strict=True), 3):
        assert ours[0].device.type == "cuda" and torch.equal(ours[0], theirs[0])

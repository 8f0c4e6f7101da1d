"""The device-resident data path: images decoded once exactly as the PIL path resizes them, the same PK order
and seeds, and augmentation with the PIL path's distributions (pixel-exact where the draws are the same)."""

import itertools

import torch
from torchvision import transforms as T

from trials.data import load_dataset
from trials.data.batch_augment import augment_batch, draw_params
from trials.data.images import read_image
from trials.data.loaders import BatchStream, train_loader
from trials.data.resident import ResidentLoader, decode_split
from trials.data.transforms import ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD

SIZE = (64, 32)
CPU = torch.device("cpu")


def _train(root):
    return load_dataset("market1501", root).train


def test_decoding_is_the_pil_resize_pixel_for_pixel(synthetic_root, tmp_path):
    samples = _train(synthetic_root)[:12]
    images = decode_split(samples, SIZE, cache_dir=tmp_path)
    reference = torch.stack([T.PILToTensor()(T.Resize(SIZE)(read_image(s.path))) for s in samples])
    assert images.dtype == torch.uint8 and torch.equal(images, reference)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert torch.equal(decode_split(samples, SIZE, cache_dir=tmp_path), images)  # the next trial reads the cache


def test_in_domain_augmentation_equals_the_pil_steps_with_the_same_draws(synthetic_root):
    samples = _train(synthetic_root)[:16]
    images = decode_split(samples, SIZE)
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
    images = decode_split(_train(synthetic_root)[:8], SIZE)
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

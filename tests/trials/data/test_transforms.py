"""Train and test transforms of the MSINet recipe: output shapes, normalisation, augmentation choice."""

import torch
from PIL import Image
from torchvision import transforms as T

from trials.data import build_transforms
from trials.data.transforms import ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD, RandomErasing


def mean_colour_image(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), tuple(round(m * 255) for m in IMAGENET_MEAN))


def test_test_transform_resizes_and_normalises():
    out = build_transforms(64, 32, train=False)(mean_colour_image(50, 90))
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32
    assert out.abs().max() < 0.02  # the ImageNet mean colour maps to ~0
    white = build_transforms(64, 32, train=False)(Image.new("RGB", (10, 10), (255, 255, 255)))
    expected = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(white[:, 0, 0], expected, atol=1e-5)


def test_train_transform_output_shape_for_persons_and_vehicles():
    torch.manual_seed(0)
    image = Image.new("RGB", (40, 70), (200, 30, 60))
    for height, width in ((64, 32), (64, 64), (32, 16)):
        for cross in (False, True):
            out = build_transforms(height, width, train=True, cross_domain=cross)(image)
            assert out.shape == (3, height, width)


def test_in_domain_uses_random_erasing_cross_domain_colour_jitter():
    def kinds(t):
        return [type(step) for step in t.transforms]

    in_domain = build_transforms(64, 32, train=True)
    assert kinds(in_domain) == [T.Resize, T.RandomHorizontalFlip, T.Pad, T.RandomCrop, T.ToTensor, T.Normalize,
                                RandomErasing]
    assert in_domain.transforms[-1].p == 0.5
    torchvision = build_transforms(64, 32, train=True, erasing="torchvision")
    assert kinds(torchvision)[-1] is T.RandomErasing
    cross = build_transforms(64, 32, train=True, cross_domain=True)
    assert kinds(cross) == [T.Resize, T.RandomHorizontalFlip, T.Pad, T.RandomCrop, T.ColorJitter, T.ToTensor,
                            T.Normalize]
    jitter = cross.transforms[4]
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == ((0.6, 1.4), (0.6, 1.4),
                                                                                (0.7, 1.3), None)


def test_train_transform_is_random_but_seedable():
    image = Image.frombytes("RGB", (32, 64), bytes(range(256)) * 24)
    t = build_transforms(64, 32, train=True)
    torch.manual_seed(5)
    a = t(image)
    torch.manual_seed(5)
    assert torch.equal(a, t(image))
    outs = [t(image) for _ in range(5)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_padding_is_the_recipes_10_pixels_at_height_256_and_scales_with_smaller_images():
    assert build_transforms(256, 128, train=True).transforms[2].padding == 10
    assert build_transforms(256, 256, train=True, cross_domain=True).transforms[2].padding == 10
    assert build_transforms(64, 32, train=True).transforms[2].padding == 2
    assert build_transforms(32, 16, train=True).transforms[2].padding == 1


def test_padding_can_be_the_absolute_10_pixels_at_any_size():
    assert build_transforms(64, 32, train=True, padding=10).transforms[2].padding == 10


def test_random_erasing_has_the_authors_statistics():
    """p 0.5; area uniform in [0.02, 0.4] of the image; aspect uniform in [0.3, 1/0.3]; the fill written
    as it is into the normalised tensor. torchvision's variant erases less (mean area ~0.165). On one thread:
    4000 images of tiny operations, which a second thread only slows (x8 on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_erasing_statistics()
    finally:
        torch.set_num_threads(threads)


def _check_erasing_statistics():
    torch.manual_seed(0)
    erase = RandomErasing()
    marker = torch.full((3,), -7.0)
    areas, aspects = [], []
    for _ in range(4000):
        image = erase(marker[:, None, None].expand(3, 256, 128).clone())
        erased = (image != -7.0).all(dim=0)
        if erased.any():
            rows, cols = erased.any(dim=1).nonzero(), erased.any(dim=0).nonzero()
            h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
            assert int(erased.sum()) == h * w  # one box
            areas.append(h * w / (256 * 128))
            aspects.append(h / w)
            values = image[:, erased]
            assert torch.equal(values, torch.tensor(ERASING_FILL)[:, None].expand_as(values))
    rate = len(areas) / 4000
    areas_t, aspects_t = torch.tensor(areas), torch.tensor(aspects)
    assert 0.47 < rate < 0.53
    assert 0.185 < float(areas_t.mean()) < 0.21  # uniform [0.02, 0.4] less the draws that do not fit
    assert float(areas_t.min()) >= 0.018 and float(areas_t.max()) <= 0.405
    assert float(aspects_t.min()) >= 0.28 and float(aspects_t.max()) <= 3.5
    assert float((aspects_t > 1).float().mean()) > 0.5  # uniform in [0.3, 3.33]: most draws are tall

"""Train and test transforms of the MSINet recipe: output shapes, normalisation, augmentation choice."""

import torch
from PIL import Image
from torchvision import transforms as T

from trials.data import build_transforms
from trials.data.transforms import IMAGENET_MEAN, IMAGENET_STD


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
                                T.RandomErasing]
    assert in_domain.transforms[-1].p == 0.5
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

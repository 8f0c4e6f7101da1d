"""What every synthetic image shares: the two rendering domains' styles and palettes, the cameras, the
backgrounds, and the camera effects (blur, illumination, colour cast, noise, occlusion)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Style:
    hues: tuple[float, ...]
    saturations: tuple[float, ...]
    values: tuple[float, ...]
    neutrals: tuple[RGB, ...]
    neutral_p: float
    background_value: tuple[float, float]
    textured: bool
    gain: tuple[float, float]
    cast: float  # per-channel spread of the camera colour cast
    cast_shift: RGB  # a common tint of all cameras
    blur: tuple[float, float]  # Gaussian radius at output resolution
    noise: float
    scale: tuple[float, float]  # subject height / image height, per camera
    offset: float  # spread of the subject's horizontal offset (fraction of the width)
    occlusion_p: float


STYLES = {
    "A": Style(
        hues=tuple(i / 10 for i in range(10)), saturations=(0.75,), values=(0.65, 0.92),
        neutrals=((0.95, 0.95, 0.95), (0.6, 0.6, 0.6), (0.15, 0.15, 0.15)), neutral_p=0.2,
        background_value=(0.6, 0.85), textured=False, gain=(0.75, 1.2), cast=0.1, cast_shift=(1.0, 1.0, 1.0),
        blur=(0.0, 0.7), noise=2.0, scale=(0.8, 0.96), offset=0.06, occlusion_p=0.2,
    ),
    "B": Style(
        hues=tuple(i / 10 + 1 / 20 for i in range(10)), saturations=(0.45, 0.8), values=(0.5, 0.85),
        neutrals=((0.8, 0.78, 0.75), (0.45, 0.45, 0.47), (0.1, 0.1, 0.12), (0.35, 0.25, 0.2)), neutral_p=0.25,
        background_value=(0.15, 0.45), textured=True, gain=(0.6, 1.0), cast=0.08, cast_shift=(0.9, 1.0, 1.12),
        blur=(0.2, 0.8), noise=4.0, scale=(0.72, 0.9), offset=0.09, occlusion_p=0.3,
    ),
}


def hsv(h: float, s: float, v: float) -> RGB:
    return colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))


def domain_palette(style: Style) -> list[RGB]:
    """The identity colours of a domain: hue x saturation x value grid, then neutrals."""
    grid = [hsv(h, s, v) for h in style.hues for s in style.saturations for v in style.values]
    return grid + list(style.neutrals)


def pick_colour(rng: np.random.Generator, style: Style, palette: list[RGB]) -> int:
    n_grid = len(palette) - len(style.neutrals)
    if rng.random() < style.neutral_p:
        return n_grid + int(rng.integers(len(style.neutrals)))
    return int(rng.integers(n_grid))


def jitter(rng: np.random.Generator, colour: RGB, amount: float = 0.03) -> RGB:
    return tuple(float(np.clip(c + rng.normal(0, amount), 0, 1)) for c in colour)


@dataclass(frozen=True)
class Camera:
    background: RGB
    background2: RGB
    pattern: str  # plain, gradient, noise, stripes, bricks
    gain: float
    cast: RGB
    blur: float
    scale: float
    front_p: float  # persons: chance to be seen from the front
    azimuth: float  # vehicles: preferred viewing direction (radians, 0 = front)
    elevation: float  # vehicles
    light: tuple[float, float, float]


def new_camera(rng: np.random.Generator, style: Style, vehicle: bool) -> Camera:
    lo, hi = style.background_value
    hue = float(rng.random())
    base = hsv(hue, float(rng.uniform(0.05, 0.3)), float(rng.uniform(lo, hi)))
    second = hsv(hue + float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0.05, 0.35)), float(rng.uniform(lo, hi)))
    # B: vehicles stand on blotchy asphalt; persons also before walls (bricks) and railings (stripes)
    textures = ("noise",) if vehicle else ("noise", "stripes", "bricks")
    patterns = textures if style.textured else ("plain", "gradient")
    cast = tuple(float(s * rng.normal(1.0, style.cast)) for s in style.cast_shift)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.8, 1.6)])
    return Camera(
        background=base, background2=second, pattern=str(rng.choice(patterns)),
        gain=float(rng.uniform(*style.gain)), cast=cast, blur=float(rng.uniform(*style.blur)),
        scale=float(rng.uniform(*style.scale)), front_p=float(rng.choice([0.15, 0.5, 0.85])),
        azimuth=float(rng.integers(8)) * math.pi / 4, elevation=math.radians(float(rng.uniform(8, 35))),
        light=tuple(float(x) for x in light / np.linalg.norm(light)),
    )


def _background(rng: np.random.Generator, cam: Camera, height: int, width: int) -> np.ndarray:
    """Float RGB (height, width, 3) background in [0, 1]."""
    a, b = np.array(cam.background), np.array(cam.background2)
    ys = np.linspace(0, 1, height)[:, None, None]
    xs = np.linspace(0, 1, width)[None, :, None]
    shade = float(rng.uniform(0.92, 1.08))
    if cam.pattern == "plain":
        img = np.broadcast_to(a, (height, width, 3)).copy()
    elif cam.pattern == "gradient":
        img = a * (1 - ys) + b * ys + 0 * xs
    elif cam.pattern == "noise":
        coarse = rng.random((max(2, height // 16), max(2, width // 16)))
        blob = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height),
                                                                              Image.BILINEAR)) / 255.0
        img = a * (1 - blob[..., None]) + b * blob[..., None]
    elif cam.pattern == "stripes":
        period = max(4, int(width * rng.uniform(0.08, 0.2)))
        phase = int(rng.integers(period))
        stripe = ((np.arange(width) + phase) // (period // 2) % 2).astype(float)[None, :, None]
        img = a * (1 - stripe) + b * stripe + 0 * ys
    else:  # bricks
        row_h = max(4, int(height * rng.uniform(0.06, 0.12)))
        brick_w = row_h * 2
        yy, xx = np.mgrid[0:height, 0:width]
        shift = (yy // row_h % 2) * (brick_w // 2)
        mortar = ((yy % row_h) < max(1, row_h // 6)) | (((xx + shift) % brick_w) < max(1, row_h // 6))
        img = np.where(mortar[..., None], b * 0.7, a)
    grain = rng.normal(0, 0.02, (height, width, 1))
    return np.clip(img * shade + grain, 0, 1)


def start_canvas(rng: np.random.Generator, cam: Camera, size: tuple[int, int], ss: int) -> Image.Image:
    """The background, drawn at the output size and enlarged to the supersampled drawing canvas."""
    height, width = size
    background = Image.fromarray((_background(rng, cam, height, width) * 255).astype(np.uint8))
    return background.resize((width * ss, height * ss), Image.BILINEAR)


def finish_image(canvas: Image.Image, size: tuple[int, int], cam: Camera, rng: np.random.Generator,
            style: Style) -> Image.Image:
    """Downsample the canvas, then the camera: blur, illumination and colour cast, sensor noise."""
    height, width = size
    img = canvas.resize((width, height), Image.LANCZOS)
    radius = cam.blur * float(rng.uniform(0.7, 1.3))
    if radius > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    arr = np.asarray(img, dtype=np.float64) / 255.0
    gain = cam.gain * float(rng.uniform(0.9, 1.1))
    arr = arr * gain * np.array(cam.cast)
    arr = arr + rng.normal(0, style.noise / 255.0, arr.shape)
    return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8))


def occlude(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cw: int, ch: int, style: Style,
             palette: list[RGB]) -> None:
    """A pole, a passer-by's edge or an object in front: covers 15-35 % of the image from one side."""
    colour = rgb255(jitter(rng, palette[pick_colour(rng, style, palette)], 0.05))
    kind = int(rng.integers(3))
    frac = float(rng.uniform(0.15, 0.35))
    if kind == 0:  # from the bottom
        draw.rectangle([0, int(ch * (1 - frac)), cw, ch], fill=colour)
    elif kind == 1:  # from a side
        w = int(cw * frac)
        x0 = 0 if rng.random() < 0.5 else cw - w
        draw.rectangle([x0, 0, x0 + w, ch], fill=colour)
    else:  # a pole
        w = max(2, int(cw * frac * 0.5))
        x0 = int(rng.integers(0, max(1, cw - w)))
        draw.rectangle([x0, 0, x0 + w, ch], fill=colour)


def rgb255(colour: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in colour)


def shaded(colour: Sequence[float], factor: float) -> tuple[int, int, int]:
    return rgb255([c * factor for c in colour])

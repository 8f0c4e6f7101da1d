"""Synthetic stand-in data written in the real on-disk layouts, so the real parsers load it.

`synthesize(layout, out, ids, seed)` draws `ids` identities and renders their images:

* persons (market1501, msmt17): a figure (head, torso, arms, legs, shoes) on a background. An identity
  owns its upper/lower/shoe/hair colours, a torso pattern (stripes, checks, dots, a band...), sleeve and
  leg-wear kinds, a bag, a hat, and its body proportions;
* vehicles (veri, vehicleid): a two-box car (body + cabin) projected from the camera's viewpoint. An
  identity owns its body, roof and window colours, its type and proportions, a side stripe, a sunroof or
  roof rack, and its rim colour.

Each camera changes appearance: background, illumination and colour cast, blur, noise, subject scale and
offset, viewpoint (persons: seen from the front or the back; vehicles: azimuth and elevation), and random
partial occlusion. Identities are learnable from pixels but raw-pixel matching is far from perfect.

Two rendering domains: A (one saturation level, bright values, few neutrals; daylight; plain or
gradient backgrounds; mild colour casts) and B (hues shifted half a step, two saturation levels, darker
values, more neutrals, muted car paints; dark textured backgrounds; bluish casts, more blur and noise;
smaller, more offset subjects; more occlusion). Every random draw comes from a generator seeded by
(seed, layout family, domain, ...): the same arguments give byte-identical files, and other seeds, domains
or layouts do not share identities.

Splits follow the real datasets: identities are split in disjoint train and test halves; each id is seen
by 2-4 cameras; train has 6-10 images per id; a test id has one query image per camera it is seen by and
6-10 gallery images (at least one per such camera). Market-1501 also gets junk (-1) and distractor (0000)
images in bounding_box_test; MSMT17's list_val holds one image per train id; VehicleID's nested test lists
hold the first third, two thirds and all of the test ids (800, 1600, 2400).

A `synthetic.json` file in the dataset folder records the arguments, a fingerprint of this file's code and
the counts; calling `synthesize` again with the same arguments (and code) reuses the folder.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from trials.data.datasets import DatasetError

LAYOUTS = ("market1501", "msmt17", "msmt17_v1", "msmt17_v2", "veri", "vehicleid")
DOMAINS = ("A", "B")
DEFAULT_IDS = 24
DEFAULT_IMAGE_SIZE = {"person": (64, 32), "vehicle": (64, 64)}
MARKER = "synthetic.json"
_FAMILY = {"market1501": 1, "msmt17": 2, "msmt17_v1": 2, "msmt17_v2": 2, "veri": 3, "vehicleid": 4}
_FOLDER = {"market1501": "Market-1501-v15.09.15", "msmt17": "MSMT17_V1", "msmt17_v1": "MSMT17_V1",
           "msmt17_v2": "MSMT17_V2", "veri": "VeRi", "vehicleid": "VehicleID"}
_CAMERAS = {"market1501": 6, "msmt17": 15, "veri": 20, "vehicleid": 6}
_JPEG_QUALITY = 92

RGB = tuple[float, float, float]


# ------------------------------------------------------------------------------------------ domain styles


@dataclass(frozen=True)
class _Style:
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


_STYLES = {
    "A": _Style(
        hues=tuple(i / 10 for i in range(10)), saturations=(0.75,), values=(0.65, 0.92),
        neutrals=((0.95, 0.95, 0.95), (0.6, 0.6, 0.6), (0.15, 0.15, 0.15)), neutral_p=0.2,
        background_value=(0.6, 0.85), textured=False, gain=(0.75, 1.2), cast=0.1, cast_shift=(1.0, 1.0, 1.0),
        blur=(0.0, 0.7), noise=2.0, scale=(0.8, 0.96), offset=0.06, occlusion_p=0.2,
    ),
    "B": _Style(
        hues=tuple(i / 10 + 1 / 20 for i in range(10)), saturations=(0.45, 0.8), values=(0.5, 0.85),
        neutrals=((0.8, 0.78, 0.75), (0.45, 0.45, 0.47), (0.1, 0.1, 0.12), (0.35, 0.25, 0.2)), neutral_p=0.25,
        background_value=(0.15, 0.45), textured=True, gain=(0.6, 1.0), cast=0.08, cast_shift=(0.9, 1.0, 1.12),
        blur=(0.2, 0.8), noise=4.0, scale=(0.72, 0.9), offset=0.09, occlusion_p=0.3,
    ),
}


def _hsv(h: float, s: float, v: float) -> RGB:
    return colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))


def _palette(style: _Style) -> list[RGB]:
    """The identity colours of a domain: hue x saturation x value grid, then neutrals."""
    grid = [_hsv(h, s, v) for h in style.hues for s in style.saturations for v in style.values]
    return grid + list(style.neutrals)


def _pick_colour(rng: np.random.Generator, style: _Style, palette: list[RGB]) -> int:
    n_grid = len(palette) - len(style.neutrals)
    if rng.random() < style.neutral_p:
        return n_grid + int(rng.integers(len(style.neutrals)))
    return int(rng.integers(n_grid))


def _jitter(rng: np.random.Generator, colour: RGB, amount: float = 0.03) -> RGB:
    return tuple(float(np.clip(c + rng.normal(0, amount), 0, 1)) for c in colour)


# ---------------------------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class _Camera:
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


def _camera(rng: np.random.Generator, style: _Style, vehicle: bool) -> _Camera:
    lo, hi = style.background_value
    hue = float(rng.random())
    base = _hsv(hue, float(rng.uniform(0.05, 0.3)), float(rng.uniform(lo, hi)))
    second = _hsv(hue + float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0.05, 0.35)), float(rng.uniform(lo, hi)))
    # B: vehicles stand on blotchy asphalt; persons also before walls (bricks) and railings (stripes)
    textures = ("noise",) if vehicle else ("noise", "stripes", "bricks")
    patterns = textures if style.textured else ("plain", "gradient")
    cast = tuple(float(s * rng.normal(1.0, style.cast)) for s in style.cast_shift)
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.8, 1.6)])
    return _Camera(
        background=base, background2=second, pattern=str(rng.choice(patterns)),
        gain=float(rng.uniform(*style.gain)), cast=cast, blur=float(rng.uniform(*style.blur)),
        scale=float(rng.uniform(*style.scale)), front_p=float(rng.choice([0.15, 0.5, 0.85])),
        azimuth=float(rng.integers(8)) * math.pi / 4, elevation=math.radians(float(rng.uniform(8, 35))),
        light=tuple(float(x) for x in light / np.linalg.norm(light)),
    )


def _background(rng: np.random.Generator, cam: _Camera, height: int, width: int) -> np.ndarray:
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


def _canvas(rng: np.random.Generator, cam: _Camera, size: tuple[int, int], ss: int) -> Image.Image:
    """The background, drawn at the output size and enlarged to the supersampled drawing canvas."""
    height, width = size
    background = Image.fromarray((_background(rng, cam, height, width) * 255).astype(np.uint8))
    return background.resize((width * ss, height * ss), Image.BILINEAR)


def _finish(canvas: Image.Image, size: tuple[int, int], cam: _Camera, rng: np.random.Generator,
            style: _Style) -> Image.Image:
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


def _occlude(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cw: int, ch: int, style: _Style,
             palette: list[RGB]) -> None:
    """A pole, a passer-by's edge or an object in front: covers 15-35 % of the image from one side."""
    colour = _rgb255(_jitter(rng, palette[_pick_colour(rng, style, palette)], 0.05))
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


def _rgb255(colour: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in colour)


def _shade(colour: Sequence[float], factor: float) -> tuple[int, int, int]:
    return _rgb255([c * factor for c in colour])


# ---------------------------------------------------------------------------------------------- persons

_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "diagonal", "band")


@dataclass(frozen=True)
class _Person:
    skin: RGB
    hair: RGB
    upper: RGB
    upper2: RGB
    lower: RGB
    shoes: RGB
    bag_colour: RGB
    pattern: str
    period: float  # pattern period, fraction of the shoulder width
    sleeves: str  # long, short
    legwear: str  # trousers, shorts, skirt
    long_hair: bool
    hat: bool
    bag: str  # none, backpack, shoulder
    bag_side: int
    height: float  # relative body height
    width: float  # shoulder width / figure height
    torso: float  # torso share of the body below the head


_SKINS = ((0.96, 0.8, 0.69), (0.87, 0.67, 0.5), (0.6, 0.42, 0.3), (0.4, 0.27, 0.2))
_HAIRS = ((0.1, 0.08, 0.06), (0.3, 0.2, 0.1), (0.55, 0.4, 0.2), (0.8, 0.7, 0.45), (0.5, 0.5, 0.5))


def _person(rng: np.random.Generator, style: _Style, palette: list[RGB]) -> tuple[_Person, tuple]:
    """A random identity and the discrete key that must differ between identities of one dataset."""
    upper, upper2, lower = (_pick_colour(rng, style, palette) for _ in range(3))
    while upper2 == upper:
        upper2 = _pick_colour(rng, style, palette)
    pattern = str(rng.choice(_PATTERNS, p=[0.3, 0.14, 0.12, 0.12, 0.1, 0.1, 0.12]))
    person = _Person(
        skin=_SKINS[int(rng.integers(len(_SKINS)))], hair=_HAIRS[int(rng.integers(len(_HAIRS)))],
        upper=_jitter(rng, palette[upper]), upper2=_jitter(rng, palette[upper2]),
        lower=_jitter(rng, palette[lower]), shoes=_jitter(rng, palette[_pick_colour(rng, style, palette)]),
        bag_colour=_jitter(rng, palette[_pick_colour(rng, style, palette)]),
        pattern=pattern, period=float(rng.uniform(0.18, 0.4)),
        sleeves=str(rng.choice(["long", "short"])), legwear=str(rng.choice(["trousers", "shorts", "skirt"],
                                                                           p=[0.6, 0.2, 0.2])),
        long_hair=bool(rng.random() < 0.3), hat=bool(rng.random() < 0.2),
        bag=str(rng.choice(["none", "backpack", "shoulder"], p=[0.45, 0.3, 0.25])), bag_side=int(rng.choice([-1, 1])),
        height=float(rng.uniform(0.88, 1.0)), width=float(rng.uniform(0.2, 0.3)),
        torso=float(rng.uniform(0.36, 0.48)),
    )
    key = (upper, lower, pattern if pattern == "solid" else (pattern, upper2), person.legwear, person.bag)
    return person, key


def _render_person(p: _Person, cam: _Camera, rng: np.random.Generator, size: tuple[int, int], style: _Style,
                   palette: list[RGB], shift: float = 0.0) -> Image.Image:
    height, width = size
    ss = max(1, math.ceil(256 / height))
    ch, cw = height * ss, width * ss
    canvas = _canvas(rng, cam, size, ss)
    draw = ImageDraw.Draw(canvas)

    fh = ch * cam.scale * p.height * float(rng.uniform(0.94, 1.04))
    top = (ch - fh) * float(rng.uniform(0.25, 0.75))
    cx = cw * (0.5 + shift + float(rng.normal(0, style.offset)))
    front = rng.random() < cam.front_p
    stride = float(rng.uniform(0, 1))  # 0: legs together, 1: mid-step
    head_h = fh * 0.13
    head_w = head_h * 0.8
    sw = min(fh * p.width, cw * 0.95)
    hip = sw * 0.85
    torso_top = top + head_h * 1.05
    torso_h = (fh - head_h) * p.torso
    legs_top = torso_top + torso_h
    shoe_h = fh * 0.035
    foot = top + fh
    legs_h = foot - shoe_h - legs_top
    skin, upper, lower = p.skin, p.upper, p.lower

    # long hair behind the shoulders (seen from the front)
    if p.long_hair and front:
        draw.rectangle([cx - head_w * 0.6, top + head_h * 0.4, cx + head_w * 0.6, torso_top + torso_h * 0.35],
                       fill=_rgb255(p.hair))
    # legs: two quads from the hips to the feet
    for side in (-1, 1):
        x_top_in, x_top_out = cx, cx + side * hip / 2
        x_bottom = cx + side * (hip * 0.25 + stride * sw * 0.3)
        lw = hip * 0.38
        quad = [(x_top_in, legs_top), (x_top_out, legs_top), (x_bottom + side * lw / 2, foot - shoe_h),
                (x_bottom - side * lw / 2, foot - shoe_h)]

        def part(t0: float, t1: float, q=quad) -> list[tuple[float, float]]:
            def at(a, b, t):
                return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
            return [at(q[0], q[3], t0), at(q[1], q[2], t0), at(q[1], q[2], t1), at(q[0], q[3], t1)]

        if p.legwear == "trousers":
            draw.polygon(quad, fill=_rgb255(lower))
        else:
            draw.polygon(quad, fill=_rgb255(skin))
            if p.legwear == "shorts":
                draw.polygon(part(0, 0.42), fill=_rgb255(lower))
        draw.rectangle([x_bottom - lw * 0.6, foot - shoe_h, x_bottom + lw * 0.6, foot], fill=_rgb255(p.shoes))
    if p.legwear == "skirt":
        draw.polygon([(cx - hip / 2, legs_top), (cx + hip / 2, legs_top), (cx + hip * 0.7, legs_top + legs_h * 0.5),
                      (cx - hip * 0.7, legs_top + legs_h * 0.5)], fill=_rgb255(lower))

    # torso with its pattern
    x0, x1 = int(cx - sw / 2), int(cx + sw / 2)
    y0, y1 = int(torso_top), int(legs_top) + 1
    arr = np.array(canvas)
    x0c, x1c, y0c, y1c = max(x0, 0), min(x1, cw), max(y0, 0), min(y1, ch)
    if x1c > x0c and y1c > y0c:
        yy, xx = np.mgrid[y0c:y1c, x0c:x1c]
        yy, xx = yy - y0, xx - x0
        period = max(2, int(p.period * sw))
        half = max(1, period // 2)
        mask = {
            "solid": np.zeros_like(yy, dtype=bool),
            "hstripes": (yy // half) % 2 == 1,
            "vstripes": (xx // half) % 2 == 1,
            "checks": (yy // half + xx // half) % 2 == 1,
            "dots": ((yy % period) < half) & ((xx % period) < half),
            "diagonal": ((xx + yy) // half) % 2 == 1,
            "band": (yy > (y1 - y0) * 0.35) & (yy < (y1 - y0) * 0.6),
        }[p.pattern]
        region = arr[y0c:y1c, x0c:x1c]
        region[:] = _rgb255(upper)
        region[mask] = _rgb255(p.upper2)
    canvas = Image.fromarray(arr)
    draw = ImageDraw.Draw(canvas)

    # arms: sleeves in the upper colour, skin below short sleeves, hands
    aw = sw * 0.17
    arm_len = torso_h * 1.05
    for side in (-1, 1):
        swing = side * stride * aw * 0.6
        ax_out = cx + side * (sw / 2 + aw * 0.7)
        ax_in = cx + side * (sw / 2 - aw * 0.3)
        xa, xb = sorted((ax_in, ax_out))
        draw.polygon([(xa, torso_top), (xb, torso_top), (xb + swing, torso_top + arm_len),
                      (xa + swing, torso_top + arm_len)], fill=_rgb255(upper))
        if p.sleeves == "short":
            elbow = torso_top + arm_len * 0.45
            draw.polygon([(xa + swing * 0.45, elbow), (xb + swing * 0.45, elbow),
                          (xb + swing, torso_top + arm_len), (xa + swing, torso_top + arm_len)], fill=_rgb255(skin))
        draw.ellipse([xa + swing, torso_top + arm_len - aw * 0.3, xb + swing, torso_top + arm_len + aw * 0.7],
                     fill=_rgb255(skin))

    # bags
    if p.bag == "backpack":
        if front:
            for side in (-1, 1):
                xs = cx + side * sw * 0.28
                draw.rectangle([xs - sw * 0.05, torso_top, xs + sw * 0.05, torso_top + torso_h * 0.7],
                               fill=_rgb255(p.bag_colour))
        else:
            draw.rectangle([cx - sw * 0.36, torso_top + torso_h * 0.1, cx + sw * 0.36, torso_top + torso_h * 0.85],
                           fill=_rgb255(p.bag_colour))
    elif p.bag == "shoulder":
        side = p.bag_side if front else -p.bag_side
        draw.line([(cx - side * sw * 0.4, torso_top), (cx + side * sw * 0.45, legs_top)],
                  fill=_rgb255(p.bag_colour), width=max(1, int(sw * 0.06)))
        bx = cx + side * sw * 0.5
        draw.rectangle([bx - sw * 0.2, legs_top - torso_h * 0.15, bx + sw * 0.2, legs_top + torso_h * 0.35],
                       fill=_rgb255(p.bag_colour))

    # head, hair, hat
    hx0, hx1 = cx - head_w / 2, cx + head_w / 2
    draw.rectangle([cx - head_w * 0.18, top + head_h * 0.8, cx + head_w * 0.18, torso_top + 1], fill=_rgb255(skin))
    if front:
        draw.ellipse([hx0, top, hx1, top + head_h], fill=_rgb255(skin))
        draw.chord([hx0, top, hx1, top + head_h * 0.9], 180, 360, fill=_rgb255(p.hair))
    else:
        draw.ellipse([hx0, top, hx1, top + head_h], fill=_rgb255(p.hair))
        if p.long_hair:
            draw.rectangle([cx - head_w * 0.5, top + head_h * 0.5, cx + head_w * 0.5, torso_top + torso_h * 0.35],
                           fill=_rgb255(p.hair))
    if p.hat:
        draw.chord([hx0 - head_w * 0.05, top - head_h * 0.08, hx1 + head_w * 0.05, top + head_h * 0.7], 180, 360,
                   fill=_rgb255(p.bag_colour))

    if rng.random() < style.occlusion_p:
        _occlude(draw, rng, cw, ch, style, palette)
    return _finish(canvas, size, cam, rng, style)


# --------------------------------------------------------------------------------------------- vehicles

_CAR_COLOURS = (  # h, s, v of common car paints
    (0.0, 0.0, 0.95), (0.0, 0.0, 0.08), (0.6, 0.03, 0.72), (0.6, 0.03, 0.45), (0.0, 0.85, 0.75),
    (0.61, 0.75, 0.7), (0.63, 0.7, 0.35), (0.14, 0.85, 0.9), (0.33, 0.6, 0.45), (0.07, 0.6, 0.45),
    (0.08, 0.85, 0.95), (0.12, 0.45, 0.75), (0.5, 0.5, 0.6), (0.85, 0.5, 0.55),
)
_TYPES = {  # length, width, body height, cabin height, cabin rear/front (fraction of length), tapers
    "sedan": (4.6, 1.8, 0.62, 0.5, -0.3, 0.18, 0.3, 0.55),
    "hatchback": (4.0, 1.75, 0.65, 0.55, -0.48, 0.15, 0.08, 0.55),
    "suv": (4.7, 1.9, 0.8, 0.65, -0.45, 0.2, 0.1, 0.45),
    "van": (4.9, 1.9, 0.95, 0.9, -0.48, 0.38, 0.05, 0.35),
    "pickup": (5.2, 1.9, 0.8, 0.65, -0.08, 0.3, 0.05, 0.35),
}
_WINDOWS = ((0.1, 0.12, 0.16), (0.25, 0.32, 0.4), (0.45, 0.55, 0.6), (0.05, 0.05, 0.06))


@dataclass(frozen=True)
class _Vehicle:
    body: RGB
    roof: RGB
    window: RGB
    stripe: RGB | None
    rim: RGB
    kind: str
    dims: tuple[float, ...]
    roof_item: str  # none, sunroof, rack


def _vehicle(rng: np.random.Generator, style: _Style, palette: list[RGB]) -> tuple[_Vehicle, tuple]:
    domain_b = style.textured
    paint = int(rng.integers(len(_CAR_COLOURS)))
    h, s, v = _CAR_COLOURS[paint]
    if domain_b:  # muted, darker paints with shifted hues
        h, s, v = h + 0.04, s * 0.75, 0.25 + v * 0.65
    body = _hsv(h + float(rng.normal(0, 0.01)), s, v * float(rng.uniform(0.92, 1.05)))
    roof_kind = int(rng.choice(3, p=[0.7, 0.15, 0.15]))
    roof = body if roof_kind == 0 else ((0.08, 0.08, 0.08) if roof_kind == 1 else (0.92, 0.92, 0.92))
    kind = str(rng.choice(list(_TYPES)))
    dims = tuple(float(d * rng.uniform(0.94, 1.06)) if i < 4 else float(d + rng.uniform(-0.04, 0.04))
                 for i, d in enumerate(_TYPES[kind]))
    has_stripe = rng.random() < 0.3
    stripe_index = _pick_colour(rng, style, palette)
    vehicle = _Vehicle(
        body=body, roof=roof, window=_WINDOWS[int(rng.integers(len(_WINDOWS)))],
        stripe=palette[stripe_index] if has_stripe else None,
        rim=((0.75, 0.75, 0.78), (0.2, 0.2, 0.2), (0.85, 0.7, 0.3))[int(rng.integers(3))],
        kind=kind, dims=dims, roof_item=str(rng.choice(["none", "sunroof", "rack"], p=[0.6, 0.2, 0.2])),
    )
    key = (paint, roof_kind, kind, stripe_index if has_stripe else None, vehicle.roof_item)
    return vehicle, key


def _solid(xa: float, xb: float, wa: float, z0: float, xc: float, xd: float, wc: float, z1: float) -> dict:
    """Faces (corners bottom-left, bottom-right, top-right, top-left) of a box-like frustum."""
    def bottom(x, s):
        return np.array([x, s * wa, z0])

    def top(x, s):
        return np.array([x, s * wc, z1])

    return {
        "front": [bottom(xb, -1), bottom(xb, 1), top(xd, 1), top(xd, -1)],
        "rear": [bottom(xa, 1), bottom(xa, -1), top(xc, -1), top(xc, 1)],
        "left": [bottom(xb, 1), bottom(xa, 1), top(xc, 1), top(xd, 1)],
        "right": [bottom(xa, -1), bottom(xb, -1), top(xd, -1), top(xc, -1)],
        "top": [top(xc, -1), top(xc, 1), top(xd, 1), top(xd, -1)],
    }


def _normal(face: list[np.ndarray], centre: np.ndarray) -> np.ndarray:
    n = np.cross(face[1] - face[0], face[3] - face[0])
    n = n / (np.linalg.norm(n) + 1e-12)
    return n if np.dot(n, np.mean(face, axis=0) - centre) >= 0 else -n


def _patch(face: list[np.ndarray], s0: float, s1: float, t0: float, t1: float) -> list[np.ndarray]:
    """The sub-quad [s0, s1] x [t0, t1] of a face, bilinearly (s along the bottom edge, t upwards)."""
    p00, p10, p11, p01 = face

    def at(s, t):
        return (1 - s) * (1 - t) * p00 + s * (1 - t) * p10 + s * t * p11 + (1 - s) * t * p01

    return [at(s0, t0), at(s1, t0), at(s1, t1), at(s0, t1)]


def _hull(points: np.ndarray) -> np.ndarray:
    pts = sorted(map(tuple, points))
    if len(pts) < 3:
        return np.array(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _render_vehicle(v: _Vehicle, cam: _Camera, rng: np.random.Generator, size: tuple[int, int], style: _Style,
                    palette: list[RGB], views: str) -> Image.Image:
    height, width = size
    ss = max(1, math.ceil(256 / max(height, width)))
    ch, cw = height * ss, width * ss
    canvas = _canvas(rng, cam, size, ss)
    draw = ImageDraw.Draw(canvas)
    # lane markings
    for _ in range(int(rng.integers(0, 3))):
        y = float(rng.uniform(0, ch))
        draw.line([(0, y), (cw, y + float(rng.uniform(-0.3, 0.3)) * ch)],
                  fill=_rgb255((0.9, 0.9, 0.85) if rng.random() < 0.7 else (0.9, 0.75, 0.2)), width=max(1, ss))

    if views == "front_rear":  # VehicleID: overhead cameras see the front or the rear
        theta = (0.0 if rng.random() < 0.5 else math.pi) + float(rng.normal(0, 0.15))
        phi = math.radians(float(rng.uniform(20, 38)))
    else:
        theta = cam.azimuth + (math.pi if rng.random() < 0.3 else 0.0) + float(rng.normal(0, 0.3))
        phi = cam.elevation + float(rng.normal(0, 0.05))
    c = np.array([math.cos(phi) * math.cos(theta), math.cos(phi) * math.sin(theta), math.sin(phi)])
    u = np.array([-math.sin(theta), math.cos(theta), 0.0])
    w = np.array([-math.sin(phi) * math.cos(theta), -math.sin(phi) * math.sin(theta), math.cos(phi)])
    light = np.array(cam.light)

    length, wd, h1, h2, cab_rear, cab_front, taper_rear, taper_front = v.dims
    r = 0.33
    z0 = r * 0.8
    body = _solid(-length / 2, length / 2, wd / 2, z0, -length / 2, length / 2, wd / 2, z0 + h1)
    ca, cb = cab_rear * length, cab_front * length
    cabin = _solid(ca, cb, wd * 0.46, z0 + h1, ca + taper_rear, cb - taper_front, wd * 0.4, z0 + h1 + h2)
    xw = length * 0.32
    wheels = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            ring = np.stack([sx * xw + r * np.cos(angles), np.zeros_like(angles), r + r * np.sin(angles)], 1)
            outer, inner = ring.copy(), ring.copy()
            outer[:, 1], inner[:, 1] = sy * wd / 2, sy * (wd / 2 - 0.25)
            rim = ring.copy()
            rim[:, 0] = sx * xw + 0.55 * r * np.cos(angles)
            rim[:, 2] = r + 0.55 * r * np.sin(angles)
            rim[:, 1] = sy * wd / 2 + 0.01
            wheels.append((sy, np.concatenate([outer, inner]), rim))

    def project(points) -> np.ndarray:
        pts = np.asarray(points)
        return np.stack([pts @ u, -(pts @ w)], axis=-1)

    every = np.concatenate([np.array(f) for f in body.values()] + [np.array(f) for f in cabin.values()]
                           + [wh[1] for wh in wheels])
    flat = project(every)
    lo, hi = flat.min(0), flat.max(0)
    margin = rng.uniform(0.02, 0.1, size=2)
    scale = np.array([cw * (1 - 2 * margin[0]), ch * (1 - 2 * margin[1])]) / np.maximum(hi - lo, 1e-6)
    scale *= float(rng.uniform(0.9, 1.0)) * cam.scale / 0.9
    offset = np.array([cw, ch]) / 2 - (lo + hi) / 2 * scale
    offset += rng.normal(0, style.offset, 2) * np.array([cw, ch])

    def poly(points) -> list[tuple[float, float]]:
        return [tuple(p) for p in project(points) * scale + offset]

    def lit(colour: RGB, normal: np.ndarray) -> tuple[int, int, int]:
        return _shade(colour, 0.55 + 0.5 * max(0.0, float(np.dot(normal, light))))

    def draw_wheel(points, rim, with_rim: bool) -> None:
        draw.polygon([tuple(p) for p in _hull(project(points) * scale + offset)], fill=_rgb255((0.06, 0.06, 0.07)))
        if with_rim:
            draw.polygon(poly(rim), fill=_rgb255(v.rim))

    near = [wh for wh in wheels if wh[0] * c[1] > 0.25]
    for wh in wheels:
        if not any(wh is n for n in near):
            draw_wheel(wh[1], wh[2], with_rim=False)

    centre = np.array([0.0, 0.0, z0 + h1 / 2])
    for name, face in body.items():
        n = _normal(face, centre)
        if np.dot(n, c) <= 1e-6:
            continue
        colour = v.body
        draw.polygon(poly(face), fill=lit(colour, n))
        if name in ("left", "right") and v.stripe is not None:
            draw.polygon(poly(_patch(face, 0.04, 0.96, 0.45, 0.62)), fill=lit(v.stripe, n))
        if name == "front":
            for s0 in (0.06, 0.74):
                draw.polygon(poly(_patch(face, s0, s0 + 0.2, 0.55, 0.82)), fill=_rgb255((1.0, 0.97, 0.85)))
            draw.polygon(poly(_patch(face, 0.32, 0.68, 0.35, 0.75)), fill=_rgb255((0.12, 0.12, 0.13)))
            draw.polygon(poly(_patch(face, 0.4, 0.6, 0.08, 0.28)), fill=_rgb255((0.95, 0.95, 0.9)))
        elif name == "rear":
            for s0 in (0.05, 0.75):
                draw.polygon(poly(_patch(face, s0, s0 + 0.2, 0.55, 0.8)), fill=_rgb255((0.85, 0.08, 0.06)))
            draw.polygon(poly(_patch(face, 0.4, 0.6, 0.15, 0.35)), fill=_rgb255((0.95, 0.95, 0.9)))

    centre = np.array([(ca + cb) / 2, 0.0, z0 + h1 + h2 / 2])
    for name, face in cabin.items():
        n = _normal(face, centre)
        if np.dot(n, c) <= 1e-6:
            continue
        if name == "top":
            draw.polygon(poly(face), fill=lit(v.roof, n))
            if v.roof_item == "sunroof":
                draw.polygon(poly(_patch(face, 0.25, 0.75, 0.35, 0.7)), fill=_rgb255(v.window))
            elif v.roof_item == "rack":
                for s0 in (0.12, 0.82):
                    draw.polygon(poly(_patch(face, s0, s0 + 0.06, 0.1, 0.9)), fill=_rgb255((0.15, 0.15, 0.15)))
            continue
        draw.polygon(poly(face), fill=lit(v.roof, n))
        glass = _shade(v.window, 0.8 + 0.4 * max(0.0, float(np.dot(n, light))))
        if name in ("left", "right"):
            draw.polygon(poly(_patch(face, 0.05, 0.47, 0.12, 0.88)), fill=glass)
            draw.polygon(poly(_patch(face, 0.53, 0.95, 0.12, 0.88)), fill=glass)
        else:
            draw.polygon(poly(_patch(face, 0.08, 0.92, 0.1, 0.9)), fill=glass)
    for wh in near:
        draw_wheel(wh[1], wh[2], with_rim=True)

    if rng.random() < style.occlusion_p:
        _occlude(draw, rng, cw, ch, style, palette)
    return _finish(canvas, size, cam, rng, style)


# --------------------------------------------------------------------------------------- plan and write


@dataclass(frozen=True)
class _Shot:
    split: str  # train, val (MSMT17 list_val), query, gallery, test (VehicleID), junk, distractor
    ident: int  # index of the identity (-1 for junk and distractors)
    pid: int  # the id written to disk
    cam: int  # 0-based camera
    key: int  # running number: seeds the image and makes its name unique


def _rng(seed: int, layout: str, domain: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, _FAMILY[layout], DOMAINS.index(domain), *keys])


def _plan(rng: np.random.Generator, layout: str, n_ids: int) -> list[_Shot]:
    """Which identity is photographed by which camera, in which split, under which pid."""
    n_train = n_ids // 2
    is_train = rng.permutation(np.array([True] * n_train + [False] * (n_ids - n_train)))
    family = "msmt17" if layout.startswith("msmt17") else layout
    if family == "msmt17":  # train and test pids both count from 0, as in the real lists
        pids, counters = [], {True: 0, False: 0}
        for t in is_train:
            pids.append(counters[bool(t)])
            counters[bool(t)] += 1
    else:
        top = {"market1501": 1501, "veri": 776, "vehicleid": 26000}[family]
        top = max(top, 4 * n_ids) if family != "market1501" else max(top, min(9999, 4 * n_ids))
        pids = sorted(int(p) for p in rng.choice(np.arange(1, top + 1), size=n_ids, replace=False))
    n_cams = _CAMERAS[family]
    shots: list[_Shot] = []

    def add(split, ident, pid, cam):
        shots.append(_Shot(split, ident, pid, cam, len(shots)))

    for ident in range(n_ids):
        m = int(rng.integers(2, min(4, n_cams) + 1))
        cams = sorted(int(c) for c in rng.choice(n_cams, size=m, replace=False))
        n = int(rng.integers(6, 11))
        seen = cams + [int(c) for c in rng.choice(cams, size=n - m)]
        if is_train[ident]:
            for cam in seen:
                add("train", ident, pids[ident], cam)
            if family == "msmt17":  # list_val: one image of each train id
                add("val", ident, pids[ident], seen[-1])
        elif family == "vehicleid":
            for cam in seen:
                add("test", ident, pids[ident], cam)
        else:
            for cam in cams:
                add("query", ident, pids[ident], cam)
            for cam in seen:
                add("gallery", ident, pids[ident], cam)
    if family == "market1501":
        extra = max(2, n_ids // 4)
        for _ in range(extra):
            add("junk", -1, -1, int(rng.integers(n_cams)))
        for _ in range(extra):
            add("distractor", -1, 0, int(rng.integers(n_cams)))
    return shots


def _counts(layout: str, shots: list[_Shot]) -> dict:
    """What the parser will report: the summary of train / query / gallery, plus layout extras."""
    def stats(selected: list[_Shot], cameras: bool = True) -> dict[str, int]:
        return {"ids": len({s.pid for s in selected}), "images": len(selected),
                "cameras": len({s.cam for s in selected}) if cameras else (1 if selected else 0)}

    def of(*splits: str) -> list[_Shot]:
        return [s for s in shots if s.split in splits]

    if layout == "vehicleid":
        test_ids = sorted({s.pid for s in of("test")})
        lists = {}
        for size, chosen in _vehicleid_lists(test_ids).items():
            selected = [s for s in of("test") if s.pid in chosen]
            lists[str(size)] = {"ids": len(chosen), "images": len(selected)}
        first = _vehicleid_lists(test_ids)[800]
        selected = [s for s in of("test") if s.pid in first]
        return {
            "train": stats(of("train"), cameras=False),
            "query": {"ids": len(first), "images": len(selected) - len(first), "cameras": 1},
            "gallery": {"ids": len(first), "images": len(first), "cameras": 1},
            "test_lists": lists,
        }
    counts = {"train": stats(of("train", "val")), "query": stats(of("query")),
              "gallery": stats(of("gallery", "distractor"))}
    if layout == "market1501":
        counts["junk"] = len(of("junk"))
        counts["distractors"] = len(of("distractor"))
    return counts


def _vehicleid_lists(test_ids: list[int]) -> dict[int, set[int]]:
    """Nested test lists: the first third, two thirds and all of the (sorted) test ids."""
    n = len(test_ids)
    return {800: set(test_ids[:max(1, round(n / 3))]), 1600: set(test_ids[:max(1, round(2 * n / 3))]),
            2400: set(test_ids)}


def _write_layout(layout: str, root: Path, shots: list[_Shot], images: dict[int, Image.Image],
                  rng: np.random.Generator) -> None:
    def save(image: Image.Image, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="JPEG", quality=_JPEG_QUALITY)

    if layout == "market1501":
        folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test",
                   "junk": "bounding_box_test", "distractor": "bounding_box_test"}
        for s in shots:
            pid = "-1" if s.pid == -1 else f"{s.pid:04d}"
            name = f"{pid}_c{s.cam + 1}s{s.key % 6 + 1}_{s.key * 25 + 1:06d}_{s.key % 7 + 1:02d}.jpg"
            save(images[s.key], root / folders[s.split] / name)
    elif layout == "veri":
        folders = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
        for s in shots:
            save(images[s.key], root / folders[s.split] / f"{s.pid:04d}_c{s.cam + 1:03d}_{s.key * 40 + 7:08d}_0.jpg")
    elif layout.startswith("msmt17"):
        train_dir, test_dir = ("mask_train_v2", "mask_test_v2") if layout == "msmt17_v2" else ("train", "test")
        lists: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
        per_pid: dict[tuple[str, int], int] = {}
        for s in shots:
            side = "train" if s.split in ("train", "val") else "test"
            n = per_pid.get((side, s.pid), 0)
            per_pid[(side, s.pid)] = n + 1
            daytime = ("morning", "noon", "afternoon")[s.key % 3]
            name = f"{s.pid:04d}_{n:03d}_{s.cam + 1:02d}_0{302 + s.key % 2}{daytime}_{s.key % 9000:04d}_{n % 4}.jpg"
            rel = f"{s.pid:04d}/{name}"
            save(images[s.key], root / (train_dir if side == "train" else test_dir) / rel)
            lists[s.split].append(f"{rel} {s.pid}")
        for name, lines in lists.items():
            (root / f"list_{name}.txt").write_text("".join(line + "\n" for line in lines))
    else:  # vehicleid
        image_ids = rng.permutation(len(shots)) + 1
        lines: dict[str, list[str]] = {"train": [], "test": []}
        by_key = {}
        for s, image_id in zip(shots, image_ids, strict=True):
            name = f"{int(image_id):07d}"
            by_key[s.key] = name
            save(images[s.key], root / "image" / f"{name}.jpg")
            lines[s.split].append(f"{name} {s.pid}")
        split_dir = root / "train_test_split"
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / "train_list.txt").write_text("".join(line + "\n" for line in lines["train"]))
        test_shots = [s for s in shots if s.split == "test"]
        for size, chosen in _vehicleid_lists(sorted({s.pid for s in test_shots})).items():
            text = "".join(f"{by_key[s.key]} {s.pid}\n" for s in test_shots if s.pid in chosen)
            (split_dir / f"test_list_{size}.txt").write_text(text)


def _render_all(layout: str, shots: list[_Shot], n_ids: int, seed: int, domain: str,
                size: tuple[int, int]) -> dict[int, Image.Image]:
    family = "msmt17" if layout.startswith("msmt17") else layout
    vehicle = family in ("veri", "vehicleid")
    style = _STYLES[domain]
    palette = _palette(style)
    ident_rng = _rng(seed, layout, domain, 1)
    make = _vehicle if vehicle else _person
    identities, keys = [], set()
    for _ in range(n_ids):
        for _attempt in range(50):  # identities of one dataset differ in their discrete attributes
            ident, key = make(ident_rng, style, palette)
            if key not in keys:
                break
        keys.add(key)
        identities.append(ident)
    cam_rng = _rng(seed, layout, domain, 2)
    cameras = [_camera(cam_rng, style, vehicle) for _ in range(_CAMERAS[family])]

    images = {}
    for s in shots:
        rng = _rng(seed, layout, domain, 3, s.key)
        cam = cameras[s.cam]
        if vehicle:
            views = "front_rear" if family == "vehicleid" else "any"
            images[s.key] = _render_vehicle(identities[s.ident], cam, rng, size, style, palette, views)
        elif s.split == "distractor":  # a passer-by who is nobody's identity, often cut by the frame
            stranger, _ = _person(rng, style, palette)
            shift = float(rng.choice([-0.35, 0.0, 0.35]))
            images[s.key] = _render_person(stranger, cam, rng, size, style, palette, shift=shift)
        elif s.split == "junk":  # a bad detection: a zoomed fragment of somebody
            stranger, _ = _person(rng, style, palette)
            full = _render_person(stranger, cam, rng, size, style, palette)
            h, w = size
            fh, fw = int(h * rng.uniform(0.3, 0.5)), int(w * rng.uniform(0.4, 0.7))
            y, x = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
            images[s.key] = full.crop((x, y, x + fw, y + fh)).resize((w, h), Image.BILINEAR)
        else:
            images[s.key] = _render_person(identities[s.ident], cam, rng, size, style, palette)
    return images


def synthesize(layout: str, out: str | os.PathLike, ids: int = DEFAULT_IDS, seed: int = 0,
               image_size: tuple[int, int] | None = None, domain: str = "A", overwrite: bool = False) -> dict:
    """Write a synthetic dataset in `layout`'s real on-disk layout under `out`; return its counts.

    Args:
        layout: market1501, msmt17 (= msmt17_v1), msmt17_v2, veri or vehicleid.
        out: the data directory; the dataset folder (e.g. Market-1501-v15.09.15) is created in it.
        ids: identities in all (at least 4), half for training, half for testing.
        seed: any non-negative integer; the same arguments give byte-identical files.
        image_size: (height, width); default 64x32 for persons, 64x64 for vehicles.
        domain: "A" or "B", the rendering style.
        overwrite: replace an existing synthetic folder made with other arguments.

    Returns the counts the parser will report, `{"train"|"query"|"gallery": {"ids", "images", "cameras"}}`,
    plus `junk` and `distractors` (market1501), `test_lists` (vehicleid), and `root`, the dataset folder.
    VehicleID's query/gallery counts are those of test list 800 under `vehicleid_split`.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")
    if domain not in DOMAINS:
        raise DatasetError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    if not isinstance(ids, int) or not 4 <= ids <= 2000:
        raise DatasetError(f"ids must be an integer from 4 to 2000, got {ids!r}")
    if not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    kind = "vehicle" if layout in ("veri", "vehicleid") else "person"
    size = tuple(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE[kind]
    if len(size) != 2 or not all(isinstance(x, int) and 16 <= x <= 1024 for x in size):
        raise DatasetError(f"image_size must be (height, width) with each from 16 to 1024, got {image_size!r}")

    out = Path(out)
    root = out / _FOLDER[layout]
    request = {"generator": "trials.data.synthetic", "code": _code_digest(), "layout": layout, "ids": ids,
               "seed": seed, "image_size": list(size), "domain": domain}
    if root.exists():
        reused = _reuse(root, request, overwrite)
        if reused is not None:
            return reused

    shots = _plan(_rng(seed, layout, domain, 0), layout, ids)
    images = _render_all(layout, shots, ids, seed, domain, size)
    counts = _counts(layout, shots)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{root.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        _write_layout(layout, staging, shots, images, _rng(seed, layout, domain, 4))
        marker = {**request, "counts": counts}
        (staging / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        try:
            staging.rename(root)
        except OSError:  # another process finished the same folder first
            reused = _reuse(root, request, overwrite=False)
            if reused is None:
                raise
            return reused
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {**counts, "root": str(root)}


def _code_digest() -> str:
    """Fingerprint of this generator's code: data written by an older renderer is not reused."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _reuse(root: Path, request: dict, overwrite: bool) -> dict | None:
    """The recorded counts when `root` holds the same synthetic data; None after removing other data."""
    marker = root / MARKER
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise DatasetError(
            f"{root} already exists and was not written by `synthesize` (no readable {MARKER}); "
            "choose another output folder"
        ) from None
    if {k: recorded.get(k) for k in request} == request:
        return {**recorded["counts"], "root": str(root)}
    if not overwrite:
        previous = ", ".join(f"{k}={recorded.get(k)}" for k in ("layout", "ids", "seed", "image_size", "domain"))
        raise DatasetError(f"{root} already holds synthetic data made with other arguments ({previous}); "
                           "pass overwrite=True (--overwrite) to replace it, or choose another output folder")
    shutil.rmtree(root)
    return None

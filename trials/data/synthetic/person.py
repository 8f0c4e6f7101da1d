"""Synthetic persons: an identity's clothing, colours and build, drawn as a figure seen from the front or back."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from trials.data.synthetic.scene import (
    RGB,
    Camera,
    Style,
    finish_image,
    jitter,
    occlude,
    pick_colour,
    rgb255,
    start_canvas,
)

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


def new_person(rng: np.random.Generator, style: Style, palette: list[RGB]) -> tuple[_Person, tuple]:
    """A random identity and the discrete key that must differ between identities of one dataset."""
    upper, upper2, lower = (pick_colour(rng, style, palette) for _ in range(3))
    while upper2 == upper:
        upper2 = pick_colour(rng, style, palette)
    pattern = str(rng.choice(_PATTERNS, p=[0.3, 0.14, 0.12, 0.12, 0.1, 0.1, 0.12]))
    person = _Person(
        skin=_SKINS[int(rng.integers(len(_SKINS)))], hair=_HAIRS[int(rng.integers(len(_HAIRS)))],
        upper=jitter(rng, palette[upper]), upper2=jitter(rng, palette[upper2]),
        lower=jitter(rng, palette[lower]), shoes=jitter(rng, palette[pick_colour(rng, style, palette)]),
        bag_colour=jitter(rng, palette[pick_colour(rng, style, palette)]),
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


def render_person(p: _Person, cam: Camera, rng: np.random.Generator, size: tuple[int, int], style: Style,
                   palette: list[RGB], shift: float = 0.0) -> Image.Image:
    height, width = size
    ss = max(1, math.ceil(256 / height))
    ch, cw = height * ss, width * ss
    canvas = start_canvas(rng, cam, size, ss)
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
                       fill=rgb255(p.hair))
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
            draw.polygon(quad, fill=rgb255(lower))
        else:
            draw.polygon(quad, fill=rgb255(skin))
            if p.legwear == "shorts":
                draw.polygon(part(0, 0.42), fill=rgb255(lower))
        draw.rectangle([x_bottom - lw * 0.6, foot - shoe_h, x_bottom + lw * 0.6, foot], fill=rgb255(p.shoes))
    if p.legwear == "skirt":
        draw.polygon([(cx - hip / 2, legs_top), (cx + hip / 2, legs_top), (cx + hip * 0.7, legs_top + legs_h * 0.5),
                      (cx - hip * 0.7, legs_top + legs_h * 0.5)], fill=rgb255(lower))

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
        region[:] = rgb255(upper)
        region[mask] = rgb255(p.upper2)
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
                      (xa + swing, torso_top + arm_len)], fill=rgb255(upper))
        if p.sleeves == "short":
            elbow = torso_top + arm_len * 0.45
            draw.polygon([(xa + swing * 0.45, elbow), (xb + swing * 0.45, elbow),
                          (xb + swing, torso_top + arm_len), (xa + swing, torso_top + arm_len)], fill=rgb255(skin))
        draw.ellipse([xa + swing, torso_top + arm_len - aw * 0.3, xb + swing, torso_top + arm_len + aw * 0.7],
                     fill=rgb255(skin))

    # bags
    if p.bag == "backpack":
        if front:
            for side in (-1, 1):
                xs = cx + side * sw * 0.28
                draw.rectangle([xs - sw * 0.05, torso_top, xs + sw * 0.05, torso_top + torso_h * 0.7],
                               fill=rgb255(p.bag_colour))
        else:
            draw.rectangle([cx - sw * 0.36, torso_top + torso_h * 0.1, cx + sw * 0.36, torso_top + torso_h * 0.85],
                           fill=rgb255(p.bag_colour))
    elif p.bag == "shoulder":
        side = p.bag_side if front else -p.bag_side
        draw.line([(cx - side * sw * 0.4, torso_top), (cx + side * sw * 0.45, legs_top)],
                  fill=rgb255(p.bag_colour), width=max(1, int(sw * 0.06)))
        bx = cx + side * sw * 0.5
        draw.rectangle([bx - sw * 0.2, legs_top - torso_h * 0.15, bx + sw * 0.2, legs_top + torso_h * 0.35],
                       fill=rgb255(p.bag_colour))

    # head, hair, hat
    hx0, hx1 = cx - head_w / 2, cx + head_w / 2
    draw.rectangle([cx - head_w * 0.18, top + head_h * 0.8, cx + head_w * 0.18, torso_top + 1], fill=rgb255(skin))
    if front:
        draw.ellipse([hx0, top, hx1, top + head_h], fill=rgb255(skin))
        draw.chord([hx0, top, hx1, top + head_h * 0.9], 180, 360, fill=rgb255(p.hair))
    else:
        draw.ellipse([hx0, top, hx1, top + head_h], fill=rgb255(p.hair))
        if p.long_hair:
            draw.rectangle([cx - head_w * 0.5, top + head_h * 0.5, cx + head_w * 0.5, torso_top + torso_h * 0.35],
                           fill=rgb255(p.hair))
    if p.hat:
        draw.chord([hx0 - head_w * 0.05, top - head_h * 0.08, hx1 + head_w * 0.05, top + head_h * 0.7], 180, 360,
                   fill=rgb255(p.bag_colour))

    if rng.random() < style.occlusion_p:
        occlude(draw, rng, cw, ch, style, palette)
    return finish_image(canvas, size, cam, rng, style)

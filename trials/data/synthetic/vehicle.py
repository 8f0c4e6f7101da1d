"""Synthetic vehicles: an identity's paint, type and proportions, drawn as a two-box car projected from the
camera's viewpoint."""

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
    hsv,
    occlude,
    pick_colour,
    rgb255,
    shaded,
    start_canvas,
)

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


def new_vehicle(rng: np.random.Generator, style: Style, palette: list[RGB]) -> tuple[_Vehicle, tuple]:
    domain_b = style.textured
    paint = int(rng.integers(len(_CAR_COLOURS)))
    h, s, v = _CAR_COLOURS[paint]
    if domain_b:  # muted, darker paints with shifted hues
        h, s, v = h + 0.04, s * 0.75, 0.25 + v * 0.65
    body = hsv(h + float(rng.normal(0, 0.01)), s, v * float(rng.uniform(0.92, 1.05)))
    roof_kind = int(rng.choice(3, p=[0.7, 0.15, 0.15]))
    roof = body if roof_kind == 0 else ((0.08, 0.08, 0.08) if roof_kind == 1 else (0.92, 0.92, 0.92))
    kind = str(rng.choice(list(_TYPES)))
    dims = tuple(float(d * rng.uniform(0.94, 1.06)) if i < 4 else float(d + rng.uniform(-0.04, 0.04))
                 for i, d in enumerate(_TYPES[kind]))
    has_stripe = rng.random() < 0.3
    stripe_index = pick_colour(rng, style, palette)
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


def render_vehicle(v: _Vehicle, cam: Camera, rng: np.random.Generator, size: tuple[int, int], style: Style,
                    palette: list[RGB], views: str) -> Image.Image:
    height, width = size
    ss = max(1, math.ceil(256 / max(height, width)))
    ch, cw = height * ss, width * ss
    canvas = start_canvas(rng, cam, size, ss)
    draw = ImageDraw.Draw(canvas)
    # lane markings
    for _ in range(int(rng.integers(0, 3))):
        y = float(rng.uniform(0, ch))
        draw.line([(0, y), (cw, y + float(rng.uniform(-0.3, 0.3)) * ch)],
                  fill=rgb255((0.9, 0.9, 0.85) if rng.random() < 0.7 else (0.9, 0.75, 0.2)), width=max(1, ss))

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
        return shaded(colour, 0.55 + 0.5 * max(0.0, float(np.dot(normal, light))))

    def draw_wheel(points, rim, with_rim: bool) -> None:
        draw.polygon([tuple(p) for p in _hull(project(points) * scale + offset)], fill=rgb255((0.06, 0.06, 0.07)))
        if with_rim:
            draw.polygon(poly(rim), fill=rgb255(v.rim))

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
                draw.polygon(poly(_patch(face, s0, s0 + 0.2, 0.55, 0.82)), fill=rgb255((1.0, 0.97, 0.85)))
            draw.polygon(poly(_patch(face, 0.32, 0.68, 0.35, 0.75)), fill=rgb255((0.12, 0.12, 0.13)))
            draw.polygon(poly(_patch(face, 0.4, 0.6, 0.08, 0.28)), fill=rgb255((0.95, 0.95, 0.9)))
        elif name == "rear":
            for s0 in (0.05, 0.75):
                draw.polygon(poly(_patch(face, s0, s0 + 0.2, 0.55, 0.8)), fill=rgb255((0.85, 0.08, 0.06)))
            draw.polygon(poly(_patch(face, 0.4, 0.6, 0.15, 0.35)), fill=rgb255((0.95, 0.95, 0.9)))

    centre = np.array([(ca + cb) / 2, 0.0, z0 + h1 + h2 / 2])
    for name, face in cabin.items():
        n = _normal(face, centre)
        if np.dot(n, c) <= 1e-6:
            continue
        if name == "top":
            draw.polygon(poly(face), fill=lit(v.roof, n))
            if v.roof_item == "sunroof":
                draw.polygon(poly(_patch(face, 0.25, 0.75, 0.35, 0.7)), fill=rgb255(v.window))
            elif v.roof_item == "rack":
                for s0 in (0.12, 0.82):
                    draw.polygon(poly(_patch(face, s0, s0 + 0.06, 0.1, 0.9)), fill=rgb255((0.15, 0.15, 0.15)))
            continue
        draw.polygon(poly(face), fill=lit(v.roof, n))
        glass = shaded(v.window, 0.8 + 0.4 * max(0.0, float(np.dot(n, light))))
        if name in ("left", "right"):
            draw.polygon(poly(_patch(face, 0.05, 0.47, 0.12, 0.88)), fill=glass)
            draw.polygon(poly(_patch(face, 0.53, 0.95, 0.12, 0.88)), fill=glass)
        else:
            draw.polygon(poly(_patch(face, 0.08, 0.92, 0.1, 0.9)), fill=glass)
    for wh in near:
        draw_wheel(wh[1], wh[2], with_rim=True)

    if rng.random() < style.occlusion_p:
        occlude(draw, rng, cw, ch, style, palette)
    return finish_image(canvas, size, cam, rng, style)

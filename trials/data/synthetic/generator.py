"""`synthesize`: render the planned shots and write them, once, into a real layout (reused when unchanged)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from PIL import Image

from trials.data.datasets import DatasetError
from trials.data.synthetic.layouts import (
    CAMERAS,
    DEFAULT_IDS,
    DEFAULT_IMAGE_SIZE,
    DOMAINS,
    FOLDER,
    LAYOUTS,
    MARKER,
    Shot,
    layout_counts,
    plan_shots,
    seeded_rng,
    write_layout,
)
from trials.data.synthetic.person import new_person, render_person
from trials.data.synthetic.scene import STYLES, domain_palette, new_camera
from trials.data.synthetic.vehicle import new_vehicle, render_vehicle


def _render_all(layout: str, shots: list[Shot], n_ids: int, seed: int, domain: str,
                size: tuple[int, int]) -> dict[int, Image.Image]:
    family = "msmt17" if layout.startswith("msmt17") else layout
    vehicle = family in ("veri", "vehicleid")
    style = STYLES[domain]
    palette = domain_palette(style)
    ident_rng = seeded_rng(seed, layout, domain, 1)
    make = new_vehicle if vehicle else new_person
    identities, keys = [], set()
    for _ in range(n_ids):
        for _attempt in range(50):  # identities of one dataset differ in their discrete attributes
            ident, key = make(ident_rng, style, palette)
            if key not in keys:
                break
        keys.add(key)
        identities.append(ident)
    cam_rng = seeded_rng(seed, layout, domain, 2)
    cameras = [new_camera(cam_rng, style, vehicle) for _ in range(CAMERAS[family])]

    images = {}
    for s in shots:
        rng = seeded_rng(seed, layout, domain, 3, s.key)
        cam = cameras[s.cam]
        if vehicle:
            views = "front_rear" if family == "vehicleid" else "any"
            images[s.key] = render_vehicle(identities[s.ident], cam, rng, size, style, palette, views)
        elif s.split == "distractor":  # a passer-by who is nobody's identity, often cut by the frame
            stranger, _ = new_person(rng, style, palette)
            shift = float(rng.choice([-0.35, 0.0, 0.35]))
            images[s.key] = render_person(stranger, cam, rng, size, style, palette, shift=shift)
        elif s.split == "junk":  # a bad detection: a zoomed fragment of somebody
            stranger, _ = new_person(rng, style, palette)
            full = render_person(stranger, cam, rng, size, style, palette)
            h, w = size
            fh, fw = int(h * rng.uniform(0.3, 0.5)), int(w * rng.uniform(0.4, 0.7))
            y, x = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
            images[s.key] = full.crop((x, y, x + fw, y + fh)).resize((w, h), Image.BILINEAR)
        else:
            images[s.key] = render_person(identities[s.ident], cam, rng, size, style, palette)
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
    VehicleID's query/gallery counts are those of test list 2400 (the default) under `vehicleid_split`.
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
    root = out / FOLDER[layout]
    request = {"generator": "trials.data.synthetic", "code": _code_digest(), "layout": layout, "ids": ids,
               "seed": seed, "image_size": list(size), "domain": domain}
    if root.exists():
        reused = _reuse(root, request, overwrite)
        if reused is not None:
            return reused

    shots = plan_shots(seeded_rng(seed, layout, domain, 0), layout, ids)
    images = _render_all(layout, shots, ids, seed, domain, size)
    counts = layout_counts(layout, shots)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{root.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        write_layout(layout, staging, shots, images, seeded_rng(seed, layout, domain, 4))
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
    """Fingerprint of this package's code: data written by an older renderer is not reused."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


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

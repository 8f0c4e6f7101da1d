"""Features from a served MSINet model: `python -m trials.deploy.client IMAGES... --url URL --preprocessing FILE`.

The client of `mlflow models serve` (docs/deployment.md, Serving): each image is decoded as RGB, resized
(bilinear, antialiased), scaled to [0, 1] and normalised as the model's `preprocessing.json` says (the export
writes it), and the images go in batches as one Parquet table per request (MLflow's
`application/vnd.apache.parquet`: float32 bytes, about 6 times smaller than the same batch as JSON numbers).
The `.npz` it writes has the layout of `python -m trials.extract`: `features`, `paths`, `preprocessing`. A
server that refuses a batch (HTTP 400: e.g. inputs outside the normalised range) ends the command with its
message and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trials.deploy.images import IMAGE_SUFFIXES, list_images
from trials.deploy.inference import DeployError

PARQUET = "application/vnd.apache.parquet"
REQUIRED = ("height", "width", "mean", "std")


def read_preprocessing(path: str | Path) -> dict[str, Any]:
    """`preprocessing.json` of an export (or an MLflow model's MLmodel, whose metadata holds the same)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as error:
        raise DeployError(f"--preprocessing {path}: cannot read it ({error.strerror}); give the preprocessing.json "
                          "that `python -m trials.export` writes beside the graph") from None
    try:
        if path.name == "MLmodel":
            import yaml

            data = (yaml.safe_load(text).get("metadata") or {}).get("preprocessing") or {}
        else:
            data = json.loads(text)
    except ValueError as error:
        raise DeployError(f"--preprocessing {path}: not readable JSON ({error})") from None
    missing = [key for key in REQUIRED if key not in data]
    if missing or data.get("channel_order", "RGB") != "RGB" or data.get("layout", "NCHW") != "NCHW":
        raise DeployError(f"--preprocessing {path}: expected {', '.join(REQUIRED)} with RGB channels in NCHW "
                          f"layout (what trials.export writes); missing {', '.join(missing) or 'nothing'}")
    return data


def preprocess(image: Image.Image, preprocessing: dict[str, Any]) -> np.ndarray:
    """One image as the network takes it: RGB, resized to (height, width) bilinearly (PIL antialiases, as
    torchvision's Resize of a PIL image does), / 255, minus mean, divided by std, 3 x H x W float32."""
    size = (int(preprocessing["width"]), int(preprocessing["height"]))
    array = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32) / np.float32(255)
    mean = np.asarray(preprocessing["mean"], dtype=np.float32)
    std = np.asarray(preprocessing["std"], dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)


def encode(batch: np.ndarray) -> bytes:
    """N x 3 x H x W float32 as a Parquet table of one column, one flattened image per row: MLflow's scoring
    server reshapes it to the model's tensor signature."""
    import pandas as pd

    frame = pd.DataFrame({"images": list(batch.reshape(len(batch), -1))})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def post(url: str, body: bytes, timeout: float = 300.0) -> np.ndarray:
    """The server's features for one encoded batch; a refusal raises DeployError with the server's words."""
    request = urllib.request.Request(f"{url.rstrip('/')}/invocations", data=body, method="POST",
                                     headers={"Content-Type": PARQUET})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise DeployError(f"the server at {url} refused the batch (HTTP {error.code}): {server_message(error)}") \
            from None
    except (urllib.error.URLError, OSError) as error:
        raise DeployError(f"no answer from {url} ({getattr(error, 'reason', error)}); is `mlflow models serve` "
                          "running there? (docs/deployment.md, Serving)") from None
    return np.asarray(answer["predictions"], dtype=np.float32)


def server_message(error: urllib.error.HTTPError) -> str:
    """MLflow's error JSON, without the echo of the whole input that its scoring server puts first."""
    text = error.read().decode("utf-8", "replace")
    try:
        message = str(json.loads(text).get("message", text))
    except ValueError:
        message = text
    return message.split("\nError: ", 1)[-1].strip()


def wait_for(url: str, seconds: float) -> None:
    """Until the server answers `GET /ping` (it loads the model first), at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=5):
                return
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() >= deadline:
                raise DeployError(f"no scoring server answered at {url} within {seconds:g} s "
                                  f"({getattr(error, 'reason', error)})") from None
            time.sleep(0.5)


def image_paths(specs: Sequence[str]) -> list[Path]:
    """Image files as given; folders (recursively, sorted) and list files as `python -m trials.extract`."""
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        paths += [path] if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES else list_images(spec, "IMAGES")
    return paths


def run_client(args: argparse.Namespace) -> dict[str, Any]:
    if args.batch_size < 1:
        raise DeployError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.suffix != ".npz":
        raise DeployError(f"--out {args.out}: expected a file name ending in .npz")
    preprocessing = read_preprocessing(args.preprocessing)
    paths = image_paths(args.images)
    if args.wait:
        wait_for(args.url, args.wait)
    features, sizes = [], []
    for start in range(0, len(paths), args.batch_size):
        batch = np.stack([preprocess(_open(path), preprocessing) for path in paths[start:start + args.batch_size]])
        body = encode(batch)
        sizes.append(len(body))
        features.append(post(args.url, body))
    features = np.concatenate(features)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, features=features, paths=np.array([str(p) for p in paths]),
                 preprocessing=np.array(json.dumps({**preprocessing, "served_by": args.url})))
    return {"out": str(out) if out else None, "images": len(paths), "dim": int(features.shape[1]), "url": args.url,
            "requests": len(sizes), "largest_request_bytes": max(sizes)}


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise DeployError(f"cannot read image {path}: {error}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.deploy.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders (searched recursively) "
                        "or text files listing one image path per line")
    parser.add_argument("--url", required=True, help="the scoring server, e.g. http://127.0.0.1:5001")
    parser.add_argument("--preprocessing", required=True, help="the model's preprocessing.json (written by "
                        "python -m trials.export), or the MLmodel file of the served model")
    parser.add_argument("--out", help="write the features to this .npz (the layout of python -m trials.extract)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per request (default 32)")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="wait up to SECONDS for the server to answer first (it loads the model at start)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        summary = run_client(args)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

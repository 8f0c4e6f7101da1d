"""Features for a folder of images: `python -m trials.extract --weights PATH --images DIR|LIST --out FILE.npz`.

The `.npz` holds `features` (N x 768 float32), `paths` (the N image paths, in order) and `preprocessing`
(JSON text: size, mean, std, channel order, flip averaging, L2 normalisation, the weights). Images are
resized to the size the checkpoint was trained at unless --height/--width say otherwise. From Python:
`trials.deploy.FeatureExtractor(weights)(paths_or_images)`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from trials.config import ConfigError
from trials.data import DatasetError
from trials.deploy.extractor import FeatureExtractor
from trials.deploy.images import list_images
from trials.deploy.inference import DeployError
from trials.runtime.device import resolve_device
from trials.runtime.folders import OutputError, check_output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="checkpoint/model.pt of a retrain")
    parser.add_argument("--images", required=True, help="a folder (searched recursively) or a text file with "
                        "one image path per line")
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--flip", action="store_true", help="average each feature with the horizontally "
                        "flipped image's")
    parser.add_argument("--normalise", action="store_true", help="L2-normalise the features")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--height", type=int, help="input height (default: the trained size)")
    parser.add_argument("--width", type=int, help="input width (default: the trained size)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    return parser


def run_extract(args: argparse.Namespace) -> dict:
    if (args.height is None) != (args.width is None):
        raise DeployError("give both --height and --width, or neither (default: the trained size)")
    if Path(args.out).suffix != ".npz":
        raise DeployError(f"--out {args.out}: expected a file name ending in .npz")
    resolve_device(args.device, "--device")
    out = check_output(args.out, "--out", file=True)
    paths = list_images(args.images)
    size = (args.height, args.width) if args.height else None
    extractor = FeatureExtractor(args.weights, args.device, args.batch_size, size, args.flip, args.normalise)
    features = extractor(paths)
    np.savez(out, features=features, paths=np.array([str(p) for p in paths]),
             preprocessing=np.array(json.dumps(extractor.settings)))
    return {"out": str(out), "images": len(paths), "dim": int(features.shape[1]), **extractor.settings}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        summary = run_extract(args)
    except (DeployError, DatasetError, OutputError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

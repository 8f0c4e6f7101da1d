"""Export a trained MSINet for deployment: `python -m trials.export --weights PATH --format onnx --out DIR`.

Writes the inference-mode graph (input `images`, N x 3 x H x W normalised float32, dynamic N; output
`features`, N x 768), `preprocessing.json` beside it (size, mean, std, channel order, whether features are
L2-normalised: the graph applies none of the preprocessing) and `parity.json`. The parity check runs the
exported file in its own runtime against the PyTorch model, on random inputs and on the images of
`--check`; a failure exits with status 2 and names the worst input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from trials.data import DatasetError
from trials.deploy.formats import FILE_NAMES, FORMATS, export, load_runner
from trials.deploy.images import list_images
from trials.deploy.inference import DeployError, load_inference_model
from trials.deploy.parity import check_parity, describe
from trials.deploy.weights import local_weights
from trials.runtime.folders import OutputError, check_output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="checkpoint/model.pt of a retrain (genotype and "
                        "trained size are read from inside), a file or in MLflow (models:/msinet-STUDY@champion, "
                        "runs:/RUN_ID/checkpoint/model.pt)")
    parser.add_argument("--tracking-uri", help="MLflow store or server of a models:/ or runs:/ --weights "
                        "(default: MLFLOW_TRACKING_URI)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime), torchscript "
                        "(torch.jit.load) or pt2 (torch.export.load)")
    parser.add_argument("--out", required=True, help=f"folder for the graph ({', '.join(FILE_NAMES.values())}), "
                        "preprocessing.json and parity.json")
    parser.add_argument("--check", metavar="IMAGES", help="also compare on these real images: a folder or a "
                        "text file with one path per line")
    parser.add_argument("--height", type=int, help="input height (default: the trained size)")
    parser.add_argument("--width", type=int, help="input width (default: the trained size)")
    parser.add_argument("--l2-normalise", action="store_true", help="put L2 normalisation of the features "
                        "inside the graph (recorded in preprocessing.json)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check (not recommended)")
    parser.add_argument("--check-only", action="store_true", help="do not export: check the graph already in "
                        "--out against --weights (after copying or optimising it, say)")
    return parser


def run_export(args: argparse.Namespace, weights: str | None = None) -> dict:
    """Validate everything cheap first, then export, then check; returns what parity.json holds. `weights`: the
    local file of `args.weights` when that names it in MLflow."""
    if (args.height is None) != (args.width is None):
        raise DeployError("give both --height and --width, or neither (default: the trained size)")
    if args.check_only and args.no_parity:
        raise DeployError("--check-only and --no-parity contradict each other")
    images = list_images(args.check, "--check") if args.check else []
    out = check_output(args.out, "--out")
    graph = out / FILE_NAMES[args.format]
    if args.check_only and not graph.is_file():
        raise DeployError(f"--check-only: {graph} does not exist; export it first (without --check-only)")
    size = (args.height, args.width) if args.height else None
    model, preprocessing = load_inference_model(weights or args.weights, size, args.l2_normalise)
    torch.manual_seed(0)
    if not args.check_only:
        example = torch.randn(2, 3, preprocessing.height, preprocessing.width)
        export(model, args.format, example, out)
        preprocessing.write(out / "preprocessing.json")
        print(f"wrote {graph} and {out / 'preprocessing.json'}", file=sys.stderr)
    if args.no_parity:
        return {"graph": str(graph), "format": args.format, "weights": str(args.weights), "parity": None}
    result = check_parity(model, load_runner(graph, args.format), preprocessing, images)
    record = {"graph": str(graph), "format": args.format, "weights": str(args.weights), **result}
    (out / "parity.json").write_text(json.dumps(record, indent=2) + "\n")
    print(describe(result), file=sys.stderr)
    return record


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.out).expanduser()
    made = not out.exists()
    try:
        with local_weights(args.weights, args.tracking_uri) as path:
            record = run_export(args, path)
    except (DeployError, DatasetError, OutputError, ValueError) as error:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the --out check made it; the export failed before writing into it
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(record), flush=True)
    if record.get("passed") is False:
        sys.exit(2)


if __name__ == "__main__":
    main()

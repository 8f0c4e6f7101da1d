"""`python -m trials.data summary ...` and `python -m trials.data synthesize ...`.

Bad input (a missing folder, an unparsable file name or list line, an unknown dataset) is reported as one
paragraph on stderr with exit status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trials.data.datasets import DATASETS, VEHICLEID_TEST_SIZES, summarize
from trials.data.integrity import check_dataset_images
from trials.data.registry import load_dataset
from trials.data.synthetic import DEFAULT_IDS, DOMAINS, LAYOUTS, synthesize
from trials.dataset_names import DatasetError, source_names
from trials.runtime.folders import OutputError, check_output

SPLITS = ("train", "query", "gallery")


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 64x32, got {text!r}") from None
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trials.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    summary = commands.add_parser("summary", help="ids, images and cameras per split of a dataset")
    summary.add_argument("--dataset", required=True,
                         help=f"one of {', '.join(DATASETS)}, list:PATH or module:function; several joined with '+'")
    summary.add_argument("--data-dir", required=True, help="the folder that holds the dataset's folder")
    summary.add_argument("--test-size", type=int, choices=VEHICLEID_TEST_SIZES,
                         help="vehicleid: which test list (default 2400, as the authors)")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    summary.add_argument("--image-cache", default=str(Path.home() / ".cache" / "msinet-nas" / "image_check.json"),
                         help="where images already checked are remembered (default: %(default)s)")
    summary.add_argument("--no-image-check", action="store_true", help="do not open every image")

    synth = commands.add_parser("synthesize", help="write synthetic stand-in data in a real layout")
    synth.add_argument("--layout", required=True, choices=LAYOUTS)
    synth.add_argument("--out", required=True, help="data directory to write the dataset folder into")
    synth.add_argument("--ids", type=int, default=DEFAULT_IDS, help=f"identities, half train (default {DEFAULT_IDS})")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", type=_image_size, help="HEIGHTxWIDTH (default 64x32 persons, 64x64 vehicles)")
    synth.add_argument("--domain", choices=DOMAINS, default="A", help="rendering style (default A)")
    synth.add_argument("--overwrite", action="store_true", help="replace synthetic data made with other arguments")
    return parser


def _table(counts: dict) -> str:
    rows = [f"{'split':<8} {'ids':>6} {'images':>7} {'cameras':>8}"]
    rows += [f"{split:<8} {counts[split]['ids']:>6} {counts[split]['images']:>7} {counts[split]['cameras']:>8}"
             for split in SPLITS]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "summary":
            if not args.no_image_check:
                check_output(args.image_cache, "--image-cache", file=True)
            parts = source_names(args.dataset)
            every = {}
            for part in parts:
                options = {"test_size": args.test_size} if args.test_size is not None and part == "vehicleid" else {}
                dataset = load_dataset(part, args.data_dir, **options)
                if not args.no_image_check:
                    check_dataset_images(dataset, Path(args.image_cache))
                every[part] = counts = summarize(dataset)
                if not args.json:
                    print(f"{part} ({dataset.root}, {dataset.kind})")
                    print(_table(counts))
            if args.json:
                print(json.dumps(every[parts[0]] if len(parts) == 1 else every))
        else:
            check_output(args.out, "--out")
            counts = synthesize(args.layout, args.out, ids=args.ids, seed=args.seed, image_size=args.image_size,
                                domain=args.domain, overwrite=args.overwrite)
            print(f"wrote {args.layout} (domain {args.domain}, seed {args.seed}) to {counts['root']}")
            print(_table(counts))
            if "junk" in counts:
                print(f"bounding_box_test also holds {counts['junk']} junk (-1) images, dropped at load, and "
                      f"{counts['distractors']} distractor (0000) images, counted in the gallery")
            if args.layout == "list":
                print(f"use it as --dataset list:{counts['root']}")
            for size, listed in counts.get("test_lists", {}).items():
                print(f"test_list_{size}.txt: {listed['ids']} ids, {listed['images']} images")
    except (DatasetError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""docs/method.md, "From the authors' commands": every row's platform launch resolves, in its `--dry-run` plan,
to what the authors' command runs with their train.py / search.py defaults; and a full-scale study the
authors start from pretrained weights says, when launched without them, that it is not comparable."""

import argparse
import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## From the authors' commands"
ROW = re.compile(r"^\| `(python (?:train|search)\.py[^`]*)` \| `(python platform/launch\.py [^`]+)` \|$", re.MULTILINE)
WEIGHTS = "msinet_msmt.pth.tar"  # the authors' `genotype_factory['msmt']` file under --pretrain-dir ./pretrained
VEHICLES = ("veri", "vehicleid")


def authors_args(command: str) -> argparse.Namespace:
    """The authors' argparse defaults (vimar-gu/MSINet train.py and search.py) for the flags their README uses."""
    script, *flags = shlex.split(command)[1:]
    search = script == "search.py"
    p = argparse.ArgumentParser()
    p.add_argument("-ds", "--source-dataset", default="msmt17" if search else "market1501")
    p.add_argument("-dt", "--target-dataset", default="none")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("--num-instance", type=int, default=4)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--pretrained", action="store_true", default=False)
    p.add_argument("--sam-mode", default="none")
    p.add_argument("--sam-ratio", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=0.025 if search else 0.065)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--milestones", nargs="+", type=int, default=[150, 225, 300])
    p.add_argument("--epochs", type=int, default=350)
    args = p.parse_args(flags)
    args.search = search
    return args


def rows() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "method.md").read_text()
    assert SECTION in text
    return ROW.findall(text.split(SECTION, 1)[1].split("\n## ", 1)[0])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A weights file in the authors' layout (`{'state_dict': ...}`) named as theirs: the dry run reads it."""
    import torch

    import spaces

    path = tmp_path_factory.mktemp("pretrained") / WEIGHTS
    torch.save({"state_dict": spaces.build_msinet("msmt", num_classes=1).state_dict()}, path)
    return path


def dry_run(launch, command: str, run_dir: Path, weights: Path | None = None) -> tuple[str, dict[str, dict]]:
    """The plan's text and, per phase, its header line, `fixed` and `recipe`; `weights` stands in for the
    authors' file where the command names it (`pretrained/msinet_msmt.pth.tar`, relative to their checkout)."""
    if weights is not None:
        command = command.replace(f"pretrained/{WEIGHTS}", str(weights))
    result = launch(*shlex.split(command)[2:], "--dry-run", "--run-dir", str(run_dir))
    assert result.returncode == 0, f"{command}\n{result.stderr}"
    phases: dict[str, dict] = {}
    for line in result.stdout.splitlines():
        if line.startswith("phase "):
            current = phases.setdefault(line.split()[1], {"header": line})
        elif line.startswith(("  fixed:", "  recipe:")):
            current[line.split(":", 1)[0].strip()] = json.loads(line.split(":", 1)[1])
    return result.stdout, phases


def test_the_table_has_every_command_of_the_authors_readme():
    commands = [authors for authors, _ in rows()]
    assert commands == ["python train.py", "python train.py --pretrained",
                        "python train.py -ds market1501 -dt msmt17 --pretrained --epochs 250",
                        "python train.py -ds market1501 -dt msmt17 --pretrained --epochs 250 --sam-mode pos_neg",
                        "python train.py -ds veri --width 256", "python train.py -ds vehicleid --width 256",
                        "python search.py", "python search.py -ds market1501"]


@pytest.mark.slow
@pytest.mark.parametrize(("authors", "platform"), rows(), ids=[a for a, _ in rows()])
def test_each_row_resolves_to_the_authors_configuration(launch, run_dir, weights, authors, platform):
    args = authors_args(authors)
    text, phases = dry_run(launch, platform, run_dir, weights)
    trained = phases["search" if args.search else "retrain"]
    assert "]: 1 trials," in trained["header"], trained["header"]  # one trial: the recipe, nothing tuned
    recipe = trained["recipe"]
    expected = {"dataset": args.source_dataset, "target_dataset": None if args.target_dataset == "none"
                else args.target_dataset, "epochs": args.epochs, "lr": args.lr, "milestones": args.milestones,
                "weight_decay": args.weight_decay, "height": args.height, "width": args.width,
                "ids_per_batch": args.batch_size // args.num_instance, "instances": args.num_instance}
    if args.search:
        expected.update(supervision="tcm", arch_lr=0.002, arch_weight_decay=1e-3)
    else:
        expected.update(genotype="msmt", sam_mode=args.sam_mode, sam_ratio=args.sam_ratio)
    assert {key: recipe[key] for key in expected} == expected
    if args.search:
        assert "final" not in phases
        return
    assert (recipe["pretrained"] is not None) == args.pretrained
    if args.pretrained:
        assert Path(recipe["pretrained"]).name == WEIGHTS and Path(recipe["pretrained"]).is_absolute()
    final = phases["final"]
    assert "FINAL" in final["header"] and final["fixed"]["val_fraction"] == 0.0  # the command: on every id
    assert "from scratch" not in text  # every row the authors run pretrained names the weights


def test_the_vehicle_width_needs_no_flag_here():
    assert authors_args("python train.py -ds veri").width == 128  # theirs without --width 256 (fidelity.md)
    assert any("-ds veri --width 256" in a and "--set width" not in p for a, p in rows())
    fidelity = (ROOT / "docs" / "fidelity.md").read_text()
    assert "Vehicle image width" in fidelity and "--width 256" in fidelity


@pytest.mark.slow
def test_a_full_scale_cross_domain_launch_without_weights_says_it_is_from_scratch(launch, run_dir):
    text, _ = dry_run(launch, "python platform/launch.py --study cross_domain", run_dir)
    warning = text.splitlines()[1]  # the launch's first lines are the plan's
    assert "from scratch: not comparable to the paper's pretrained numbers" in warning
    assert "--set pretrained=" in warning and WEIGHTS in warning
    smoke, _ = dry_run(launch, "python platform/launch.py --study cross_domain --scale smoke", run_dir)
    assert "from scratch" not in smoke  # a smoke run is comparable with nothing
    in_domain, _ = dry_run(launch, "python platform/launch.py --study in_domain", run_dir)
    assert "from scratch" not in in_domain  # the authors train in-domain from scratch too (`python train.py`)


def test_the_from_scratch_tag_is_on_the_parent_run_and_beside_the_report_final_table(tmp_path):
    import study_plan
    import study_spec
    import study_tracking

    from analysis.report_final import from_scratch_lines
    from analysis.runs import load_launches

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = study_spec.load_study("cross_domain", "full")
    record = {"study": study.to_dict(), "launch": "L1", "seed": 0, "synthetic": False,
              "data_dir": str(tmp_path), "tracking_uri": uri, "optuna_storage": "", "storage_path": ""}
    study_tracking.open_parent(uri, study, "L1", study_plan.plan(record))
    lines = from_scratch_lines(load_launches(uri, "cross_domain"))
    assert lines[0].startswith("> **from scratch: not comparable to the paper's pretrained numbers")
    assert WEIGHTS in lines[0] and "(launch L1)" in lines[0]


def test_a_missing_weights_file_fails_before_anything_runs(launch, run_dir):
    result = launch("--study", "cross_domain", "--scale", "smoke", "--synthetic", "--set",
                    f"pretrained={run_dir / WEIGHTS}", "--run-dir", str(run_dir))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --set pretrained=") and WEIGHTS in lines[0]
    assert not (run_dir / "synthetic").exists() and not (run_dir / "mlflow.db").exists()

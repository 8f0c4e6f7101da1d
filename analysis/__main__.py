"""A study's results from MLflow: `report` writes the report of a launch (leaderboard with intervals, genotype
statistics, comparisons, figures), `compare` puts runs side by side, `promote` points the registered model's
alias `champion` at a run's model. `python -m analysis COMMAND --help` describes each.

An unknown study, launch or run id is a one-paragraph message on stderr naming what exists, and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analysis.compare import compare_runs, format_comparison
from analysis.links import is_server, runs_table_url, ui_base_url, ui_command
from analysis.registry import promote
from analysis.report import write_report
from analysis.runs import default_tracking_uri, load_runs_by_id, study_experiment_id
from trials.runtime.folders import OutputError, check_output

NOT_FOUND = 2


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per artefact read drowns the output
    try:
        if args.command == "report":
            return _report(args)
        if args.command == "promote":
            return _promote(args)
        return _compare(args)
    except (LookupError, OutputError) as error:
        print(f"error: {error.args[0] if error.args else error}", file=sys.stderr)
        return NOT_FOUND


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="leaderboard, genotype statistics and figures of a study's launch")
    report.add_argument("--study", required=True, help="study name (= MLflow experiment name)")
    report.add_argument("--launch", default="latest", help="launch id, latest (default) or all")
    report.add_argument("--out", type=Path, help="folder for report.md, CSVs and PNGs "
                                                 "(default <repo>/runs/reports/<study>-<launch>)")
    report.add_argument("--no-log", action="store_true", help="do not log the files to the launch's parent run")
    compare = commands.add_parser("compare", help="runs side by side: differing params, metrics, genotype slots")
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    compare.add_argument("--all-params", action="store_true", help="show every param, not only those that differ")
    promote = commands.add_parser("promote", help="register a retrain's model as msinet-<study> and move the "
                                  "alias champion to it")
    promote.add_argument("--study", required=True, help="study name (= MLflow experiment name)")
    promote.add_argument("--run", required=True, metavar="RUN_ID", help="a finished retrain run of the study")
    for command in (report, compare, promote):
        command.add_argument("--tracking-uri", default=default_tracking_uri(),
                             help="MLflow store or server (default sqlite:///<repo>/runs/mlflow.db)")
    return parser


def _report(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output(args.out, "--out")  # before anything is read
    path = write_report(args.tracking_uri, args.study, args.launch, args.out, log=not args.no_log)
    print(f"report: {path}")
    experiment_id = study_experiment_id(args.tracking_uri, args.study)
    print(f"runs table: {runs_table_url(ui_base_url(args.tracking_uri), experiment_id)}")
    if not is_server(args.tracking_uri):
        print(f"serve it with: {ui_command(args.tracking_uri)}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    result = promote(args.tracking_uri, args.study, args.run)
    print(f"{result['uri']} -> version {result['version']} (run {result['run_id']}, {result['trial']})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    runs = load_runs_by_id(args.tracking_uri, dict.fromkeys(args.run_ids))
    print(format_comparison(compare_runs(runs, all_params=args.all_params)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How `make test` spreads the suite over pytest-xdist's two workers (hooks in tests/conftest.py).

A whole test file goes to one worker, so that its module fixtures are built once; the files that ask for the
same expensive session fixture (`SHARED`) go to the same worker, so that it is built once per run, as without
xdist, and a launch's folder is never read and written from two workers at once. The groups start longest
first, by the seconds each file took when `tests/durations.json` was written (`pytest -n 2
--store-durations`), so that no long launch starts last and ends the run alone.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DURATIONS = ROOT / "tests" / "durations.json"

# The session fixtures too expensive to build twice in one run, or whose folder one worker alone may use.
# The cheap ones (synthetic_root, the S3 and PostgreSQL servers, study_store) are built once per worker.
SHARED = {"smoke_launch", "smoke_checkpoint", "local_ray", "cluster"}


@functools.cache
def worker_groups() -> dict[str, str]:
    """Test file (relative to the repository) -> its group, for the files in one: the files whose functions
    ask for the same fixture of `SHARED` form one group, named for its first file. Read from the files'
    source, since the scheduler runs in pytest's controlling process, which collects nothing
    (`check_groups` checks it against what the collected tests really use)."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        name = str(path.relative_to(ROOT))
        for fixture in SHARED & _requested(path):
            parent[find(name)] = find(f"fixture:{fixture}")
    members: dict[str, list[str]] = {}
    for name in parent:
        if not name.startswith("fixture:"):
            members.setdefault(find(name), []).append(name)
    return {name: files[0] for files in members.values() for name in files}


def group_of(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    return worker_groups().get(path, path)


def check_groups(items) -> None:
    """A file that gets a `SHARED` fixture only through another fixture escapes the source scan: say so."""
    used: dict[str, set[str]] = {}
    for item in items:
        for fixture in SHARED.intersection(item.fixturenames):
            used.setdefault(fixture, set()).add(group_of(item.nodeid))
    split = {fixture: sorted(groups) for fixture, groups in used.items() if len(groups) > 1}
    if split:
        raise pytest.UsageError(f"tests/conftest.py: {split} would each be built on two xdist workers: name the "
                                "fixture in an argument of those files' tests (tests/scheduling.py)")


def longest_first(items) -> None:
    """Sorts `items` in place: the groups by their files' recorded seconds, longest first (the slow ones before
    the rest where nothing is recorded); file order inside a group."""
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    files: dict[str, set[str]] = {}
    for item in items:
        files.setdefault(group_of(item.nodeid), set()).add(item.nodeid.split("::")[0])
    cost = {group: sum(seconds.get(f, 0.0) for f in members) for group, members in files.items()}
    slow = {group_of(i.nodeid) for i in items if i.get_closest_marker("slow")}
    items.sort(key=lambda i: (-cost[group_of(i.nodeid)], group_of(i.nodeid) not in slow))


class DurationRecorder:
    """`--store-durations`: adds up each file's seconds (setup, call, teardown) as the reports come in, and
    writes them into `DURATIONS` at the end, keeping the files this run did not run."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        path = report.nodeid.split("::")[0]
        self.seconds[path] = self.seconds.get(path, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        stored = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
        stored.update({path: round(s, 1) for path, s in self.seconds.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")


def _requested(path: Path) -> set[str]:
    """The fixtures a test file's functions and fixtures ask for by argument name."""
    return {arg.arg for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)
            for arg in node.args.args}

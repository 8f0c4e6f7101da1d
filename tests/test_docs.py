"""The documentation a user clones: every link resolves inside the repository, nothing points outside it,
and every command the READMEs and docs name still parses (`--help` exits 0)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([*ROOT.glob("*.md"), *ROOT.glob("*/README.md"), *ROOT.glob("docs/*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
MODULE_COMMAND = re.compile(r"python3? -m ([a-z_][\w.]*)(?: ([a-z][a-z_]+)\b)?")
SCRIPT_COMMAND = re.compile(r"python3? ((?:platform|benchmarks)/[\w/]+\.py)")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh", "Makefile", "run")
    return [ROOT / n for n in names if n.endswith(keep) and (ROOT / n).is_file()]


def _commands() -> list[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for doc in DOCS:
        text = doc.read_text()
        for module, word in MODULE_COMMAND.findall(text):
            if module.split(".")[0] not in {"trials", "analysis", "spaces"}:
                continue  # third-party commands (e.g. python -m pip) are not ours to test
            found.add(("-m", module, word) if word else ("-m", module))
        for script in SCRIPT_COMMAND.findall(text):
            found.add((script,))
    return sorted(found)


def test_docs_exist_and_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in ("docs/architecture.md", "docs/method.md", "docs/studies.md", "docs/fidelity.md"):
        assert (ROOT / page).is_file(), page
        assert f"({page})" in readme, f"README.md does not link {page}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to {target}, which does not exist"


def test_nothing_points_outside_the_repository():
    outside = [str(p.relative_to(ROOT)) for p in _tracked_text_files()
               if p != Path(__file__) and re.search(r"\.\./shared|DESIGN\.md", p.read_text(errors="ignore"))]
    assert outside == []


def test_the_commands_in_the_docs_are_found():
    commands = _commands()
    for expected in [("-m", "trials.search"), ("-m", "trials.retrain"), ("-m", "trials.evaluate"),
                     ("-m", "trials.data", "summary"), ("-m", "analysis", "report"), ("platform/launch.py",)]:
        assert expected in commands


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """`python COMMAND --help` of every documented command (and of the module of each `-m module word`), run
    a few at a time: each one is mostly the interpreter importing torch, which one core does no faster."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = sorted({c for command in _commands() for c in (command, command[:2])})

    def run(command):
        return command, subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(pool.map(run, wanted))


@pytest.mark.slow
@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_documented_command_parses(command, helps):
    if command[0] == "-m" and len(command) == 3 and command[2] not in helps[command[:2]].stdout:
        command = command[:2]  # `python -m analysis report ...`: the word is a subcommand only when it has one
    done = helps[command]
    assert done.returncode == 0, f"python {' '.join(command)} --help: {done.stderr[-2000:]}"
    assert "usage:" in done.stdout

"""The data modules import each other without a cycle (one home per concept: names and kinds in
trials/dataset_names.py, layouts in datasets.py, list files in listed.py, the name -> loader dispatch in
registry.py), and the name and kind checks the driver runs import no torch."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _imports(path: Path) -> set[str]:
    """Every module of ours a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trials"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("trials"))
    return found


def test_the_data_modules_form_no_import_cycle():
    files = {f"trials.data.{p.stem}": p for p in (ROOT / "trials" / "data").glob("*.py") if p.stem != "__init__"}
    files["trials.dataset_names"] = ROOT / "trials" / "dataset_names.py"
    files["trials.text_files"] = ROOT / "trials" / "text_files.py"
    graph = {name: {m for m in _imports(path) if m in files} for name, path in files.items()}
    for name, path in files.items():  # `from trials.data import X` runs the package, which imports them all
        if name.startswith("trials.data.") and "trials.data" in _imports(path):
            graph[name] |= set(files) - {name}
    visiting, done = [], set()

    def visit(node):
        assert node not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(node):] + [node])}"
        if node in done:
            return
        visiting.append(node)
        for nxt in graph[node]:
            visit(nxt)
        visiting.pop()
        done.add(node)

    for name in graph:
        visit(name)
    assert graph["trials.dataset_names"] <= {"trials.text_files"}


def test_name_and_kind_checks_import_no_torch(tmp_path):
    (tmp_path / "cars").mkdir()
    (tmp_path / "cars" / "dataset.json").write_text('{"kind": "vehicle"}')
    code = ("import sys; from trials.dataset_names import dataset_kind, source_names; "
            f"assert dataset_kind('list:cars+veri', {str(tmp_path)!r}) == 'vehicle'; source_names('a:b+market1501'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

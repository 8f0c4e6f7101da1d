"""The README's data and standalone-trial commands run as written, in order, from a checkout's root."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\.venv/bin/python -m trials\.\S+ .*$", re.MULTILINE)
pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    return [line.split("  #")[0].strip() for block in blocks for line in COMMAND.findall(block)]


def test_the_readme_names_the_standalone_commands():
    commands = readme_commands()
    for start in ("-m trials.data synthesize", "-m trials.data summary", "-m trials.search", "-m trials.retrain",
                  "-m trials.evaluate"):
        assert any(start in c for c in commands), start


@pytest.mark.timeout(2400)  # a search and a retrain at smoke scale, one after the other
def test_readme_commands_run_as_written(tmp_path):
    # A checkout-like folder: the code and .venv linked in, data/ and runs/ written fresh.
    for name in ("spaces", "trials", "analysis", "platform", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    outputs = []
    for command in readme_commands():
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=900,
                              env=env)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    final = [json.loads(out.strip().splitlines()[-1]) for out in outputs
             if out.strip() and out.strip().splitlines()[-1].startswith("{")]
    assert any("genotype" in metrics and "alpha/entropy" in metrics for metrics in final)  # the search
    assert any("source/mAP" in metrics for metrics in final)  # retrain and evaluate

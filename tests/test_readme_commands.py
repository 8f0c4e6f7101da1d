"""The README's data and standalone-trial commands run as written, in order, from a checkout's root."""

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\.venv/bin/python -m trials\.\S+ .*$", re.MULTILINE)
pytestmark = pytest.mark.slow


DEPLOYMENT = "## From a trained model to deployment"


def _blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def readme_commands() -> list[str]:
    """The standalone commands, in order (the deployment section is run whole, below)."""
    text = (ROOT / "README.md").read_text()
    before, _, after = text.partition(DEPLOYMENT)
    rest = after.split("\n## ", 1)[1] if "\n## " in after else ""
    return [line.split("  #")[0].strip() for block in _blocks(before + rest) for line in COMMAND.findall(block)]


def deployment_script() -> str:
    section = (ROOT / "README.md").read_text().partition(DEPLOYMENT)[2].split("\n## ", 1)[0]
    return "\n".join(_blocks(section))


def checkout(folder: Path) -> None:
    """A checkout-like folder: the code copied (launch.py finds the repository from its own path), .venv
    linked, data/ and runs/ written fresh."""
    for name in ("spaces", "trials", "analysis", "platform"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / ".venv").symlink_to(ROOT / ".venv")


def test_the_readme_names_the_standalone_commands():
    commands = readme_commands()
    for start in ("-m trials.data synthesize", "-m trials.data summary", "-m trials.search", "-m trials.retrain",
                  "-m trials.evaluate"):
        assert any(start in c for c in commands), start


@pytest.mark.timeout(2400)  # a search and a retrain at smoke scale, one after the other
def test_readme_commands_run_as_written(tmp_path):
    checkout(tmp_path)
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


@pytest.mark.timeout(1800)
def test_the_deployment_section_runs_as_written(tmp_path):
    """The smoke study, its champion downloaded, exported with parity, features extracted, served by
    `mlflow models serve` and queried through the client (the same features as `trials.extract`), promoted."""
    import numpy as np

    from tests.net import free_port

    checkout(tmp_path)
    script = deployment_script()
    assert "platform/launch.py --study smoke" in script and "trials.export" in script
    assert "mlflow models serve" in script and "trials.deploy.client" in script
    script = script.replace("5001", str(free_port()))  # the documented port may be taken on a shared machine
    # the PATH a fresh shell has: the README's serving line must not rely on an activated venv
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = shell.communicate(timeout=1700)
    finally:
        if shell.poll() is None or subprocess.run(["pgrep", "-g", str(shell.pid)], capture_output=True).returncode == 0:
            os.killpg(shell.pid, signal.SIGTERM)  # the server too, if the script stopped before `kill %1`
    assert shell.returncode == 0, err[-3000:]
    assert (tmp_path / "export" / "model.onnx").is_file()
    assert json.loads((tmp_path / "export" / "parity.json").read_text())["passed"] is True
    extracted, served = np.load(tmp_path / "query.npz"), np.load(tmp_path / "served.npz")
    assert list(served["paths"]) == list(extracted["paths"])
    scale = np.abs(extracted["features"]).max()
    np.testing.assert_allclose(served["features"], extracted["features"], rtol=1e-4, atol=1e-4 * scale)
    assert "queries of 16 identities" in out.split("champion: ")[-1]  # what the champion's choice rests on

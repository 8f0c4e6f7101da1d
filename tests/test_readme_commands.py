"""The README's data and standalone-trial commands run as written, in order, from a checkout's root."""

import json
import os
import signal
import subprocess

import pytest

from tests.readme import MAIN_JOB, checkout, deployment_script, readme_commands

pytestmark = pytest.mark.slow


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
def test_the_deployment_section_runs_as_written(smoke_launch):
    """The smoke study (its first line: the session's shared launch, tests/conftest.py), then the rest as one
    script in the same folder: its champion downloaded, exported with parity, features extracted, served by
    `mlflow models serve` and queried through the client (the same features as `trials.extract`), promoted."""
    import numpy as np

    from tests.net import free_port

    script = deployment_script()
    assert script.startswith(MAIN_JOB + "\n") and "trials.export" in script
    assert "mlflow models serve" in script and "trials.deploy.client" in script
    assert smoke_launch.result.returncode == 0, smoke_launch.result.stderr[-3000:]
    folder, rest = smoke_launch.folder, script[len(MAIN_JOB) + 1:]
    rest = rest.replace("5001", str(free_port()))  # the documented port may be taken on a shared machine
    # the PATH a fresh shell has: the README's serving line must not rely on an activated venv
    env = {**os.environ, "PYTHONPATH": str(folder), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", rest], cwd=folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = shell.communicate(timeout=1700)
    finally:
        if shell.poll() is None or subprocess.run(["pgrep", "-g", str(shell.pid)], capture_output=True).returncode == 0:
            os.killpg(shell.pid, signal.SIGTERM)  # the server too, if the script stopped before `kill %1`
    assert shell.returncode == 0, err[-3000:]
    assert (folder / "export" / "model.onnx").is_file()
    assert json.loads((folder / "export" / "parity.json").read_text())["passed"] is True
    extracted, served = np.load(folder / "query.npz"), np.load(folder / "served.npz")
    assert list(served["paths"]) == list(extracted["paths"])
    scale = np.abs(extracted["features"]).max()
    np.testing.assert_allclose(served["features"], extracted["features"], rtol=1e-4, atol=1e-4 * scale)
    launched = smoke_launch.result.stdout
    assert "queries of 16 identities" in launched.split("champion: ")[-1]  # what the champion's choice rests on

"""What every command checks where its input enters, with one shared check each, before any work: the output
path of every command that writes (trials/runtime/folders.py) and the device of every --device (the set auto,
cpu, cuda, cuda:N; trials.config.check_device). Each bad input is one `error:` paragraph, exit status 2."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.commands import error_of
from trials.config import ConfigError, check_device
from trials.runtime.folders import OutputError, check_output

ROOT = Path(__file__).resolve().parents[1]
UNWRITABLE = Path("/proc/msinet-cannot-write")  # mkdir fails there, even for root
MISSING_GPU = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


def _error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[-1000:], done.stderr[-2000:])
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1, done.stderr
    return done.stderr


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------- outputs


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("in the way")
    return path


def test_the_shared_check_names_what_is_in_the_way(tmp_path, a_file):
    with pytest.raises(OutputError, match=f"--out {a_file}: {a_file} is a file, not a folder"):
        check_output(a_file, "--out")
    with pytest.raises(OutputError, match=f"{a_file} is a file, not a folder"):
        check_output(a_file / "below" / "f.json", "--out", file=True)
    with pytest.raises(OutputError, match=f"{tmp_path} is a folder; give a file name"):
        check_output(tmp_path, "--json", file=True)
    with pytest.raises(OutputError, match="cannot write there"):
        check_output(UNWRITABLE / "x", "--out")
    assert check_output(tmp_path / "new" / "f.npz", "--out", file=True) == tmp_path / "new" / "f.npz"
    assert (tmp_path / "new").is_dir()  # the parent is made before the work, the file is not


def _outputs(tmp_path: Path, a_file: Path) -> list[Path]:
    """Three bad outputs: a file where a folder goes, a path below a file, a folder that cannot be made."""
    return [a_file, a_file / "below", UNWRITABLE / "out"]


def test_export_checks_out_before_reading_the_weights(tmp_path, a_file, capsys):
    from trials.export import main

    for out in _outputs(tmp_path, a_file):
        err = error_of(main, ["--weights", str(tmp_path / "no-such-model.pt"), "--format", "onnx", "--out", str(out)],
                    capsys)
        assert f"--out {out}:" in err and "no-such-model" not in err


def test_extract_checks_its_file_and_device_before_reading_anything(tmp_path, a_file, capsys):
    from trials.extract import main

    (tmp_path / "folder.npz").mkdir()
    for out in [tmp_path / "folder.npz", a_file / "f.npz", UNWRITABLE / "f.npz"]:
        err = error_of(main, ["--weights", str(tmp_path / "no.pt"), "--images", str(tmp_path / "nothing"), "--out",
                           str(out)], capsys)
        assert f"--out {out}:" in err and "no.pt" not in err and "nothing" not in err
    for device in ("tpu", "cuda:x", MISSING_GPU):
        err = error_of(main, ["--weights", str(tmp_path / "no.pt"), "--images", str(tmp_path), "--out",
                           str(tmp_path / "f.npz"), "--device", device], capsys)
        assert f"--device {device!r}:" in err


def test_analysis_report_checks_out_before_reading_the_store(tmp_path, a_file, capsys):
    from analysis.__main__ import main

    for out in _outputs(tmp_path, a_file):
        err = error_of(main, ["report", "--study", "nope", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--out",
                           str(out)], capsys)
        assert f"--out {out}:" in err and "nope" not in err
    assert not (tmp_path / "none.db").exists()


def test_spaces_latency_checks_out_and_device_before_measuring(tmp_path, a_file, capsys):
    from spaces.latency import main

    for out in [tmp_path, a_file / "t.json", UNWRITABLE / "t.json"]:
        err = error_of(main, ["--device", "cpu", "--out", str(out)], capsys)
        assert f"--out {out}:" in err
    for device in ("tpu", "cuda:", "CPU", MISSING_GPU):
        err = error_of(main, ["--device", device, "--out", str(tmp_path / "t.json")], capsys)
        assert f"--device {device!r}:" in err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("script", ["gpu_retrain", "gpu_throughput"])
def test_benchmarks_check_their_outputs_and_device_first(script, tmp_path, a_file):
    err = _error(_run(f"benchmarks/{script}.py", "--device", "cpu", "--json", str(tmp_path)))
    assert f"--json {tmp_path}: {tmp_path} is a folder" in err
    err = _error(_run(f"benchmarks/{script}.py", "--device", "cpu", "--data-dir", str(a_file)))
    assert f"--data-dir {a_file}:" in err
    err = _error(_run(f"benchmarks/{script}.py", "--device", "gpu:0"))
    assert "--device 'gpu:0': expected auto, cpu, cuda or cuda:N" in err


# ---------------------------------------------------------------------------------------------- devices


def test_one_set_of_device_names_and_one_message():
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert check_device(name) == name
    messages = set()
    for name in ("tpu", "gpu", "cuda:", "cuda:-1", "cuda:a", "CPU", "cpu:0", "", None, 0):
        with pytest.raises(ConfigError) as caught:
            check_device(name, "--device")
        messages.add(str(caught.value).split(": ", 1)[1])
    assert messages == {"expected auto, cpu, cuda or cuda:N (N the index of a visible GPU)"}


@pytest.mark.parametrize("device", ["tpu", "cuda:one", MISSING_GPU])
def test_trials_and_evaluate_refuse_the_same_devices(device, tmp_path, capsys):
    from trials.evaluate import main as evaluate
    from trials.runtime.cli import main as trial
    from trials.search import run_search

    err = error_of(evaluate, ["--dataset", "market1501", "--data-dir", str(tmp_path), "--device", device], capsys)
    assert f"device {device!r}:" in err
    err = error_of(lambda argv: trial("search", run_search, argv),
                ["--data-dir", str(tmp_path), "--device", device, "--out", str(tmp_path / "out")], capsys)
    assert f"device {device!r}:" in err


def test_trials_data_checks_where_it_writes(tmp_path, a_file, capsys):
    from trials.data.__main__ import main

    for out in _outputs(tmp_path, a_file):
        err = error_of(main, ["synthesize", "--layout", "market1501", "--out", str(out)], capsys)
        assert f"--out {out}:" in err
    err = error_of(main, ["summary", "--dataset", "market1501", "--data-dir", str(tmp_path), "--image-cache",
                          str(tmp_path)], capsys)
    assert f"--image-cache {tmp_path}: {tmp_path} is a folder" in err

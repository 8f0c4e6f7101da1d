"""platform/ is our control-plane folder; it must never shadow Python's standard `platform` module."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_platform_folder_has_no_init():
    assert (ROOT / "platform").is_dir()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_wins_with_repo_root_on_path():
    code = "import sys; sys.path.insert(0, sys.argv[1]); import platform; print(platform.system())"
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}


def test_libraries_that_import_platform_still_work():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import platform, torch;"
        "assert hasattr(platform, 'machine'), platform; print(torch.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

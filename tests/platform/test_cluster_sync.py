"""What `ray up cluster.yaml` ships to every node: the code, not the local venv, run, data or git folders
(checked against rsync's rules and, where rsync is installed, against rsync itself with Ray's arguments)."""

import fnmatch
import shutil
import subprocess

import pytest
import yaml

from tests.platform.test_cluster_yaml import CLUSTER_YAML, ROOT, no_network, prepared  # noqa: F401 - its guard


@pytest.fixture(scope="module")
def cfg() -> dict:
    """cluster.yaml as `ray up` reads it (test_cluster_yaml.prepared)."""
    return prepared(yaml.safe_load(CLUSTER_YAML.read_text()))


def rsync_pattern_matches(pattern: str, path: str, is_dir: bool) -> bool:
    """rsync's exclude rules for the forms used here: a trailing "/" matches directories only, a
    leading "/" anchors at the transfer root, otherwise the pattern matches the end of the path (its
    last component when it has no "/")."""
    if pattern.endswith("/"):
        if not is_dir:
            return False
        pattern = pattern.rstrip("/")
    if pattern.startswith("/"):
        return fnmatch.fnmatchcase(path, pattern[1:])
    depth = pattern.count("/") + 1
    return fnmatch.fnmatchcase("/".join(path.split("/")[-depth:]), pattern)


def rsync_excluded(path: str, is_dir: bool, patterns: list[str]) -> bool:
    """rsync skips a file when it or any parent directory matches (an excluded directory is not entered)."""
    parts = path.split("/")
    return any(
        rsync_pattern_matches(p, "/".join(parts[:i]), is_dir or i < len(parts))
        for i in range(1, len(parts) + 1)
        for p in patterns
    )


def sync_patterns(cfg) -> list[str]:
    """rsync_exclude, plus the root-level patterns of any rsync_filter file (e.g. .gitignore)."""
    patterns = list(cfg["rsync_exclude"])
    for name in cfg["rsync_filter"]:
        f = ROOT / name
        if f.is_file():
            patterns += [
                line.strip() for line in f.read_text().splitlines() if line.strip() and not line.startswith(("#", "!"))
            ]
    return patterns


@pytest.mark.parametrize("local_only", [".venv", "runs", "data", ".git"])
def test_local_folders_are_not_synced(cfg, local_only):
    assert rsync_excluded(local_only, True, sync_patterns(cfg))
    assert rsync_excluded(f"{local_only}/some/file.bin", False, sync_patterns(cfg))


def test_code_is_synced(cfg):
    patterns = sync_patterns(cfg)
    # trials/data/ is code (datasets, sampler): an unanchored "data/" would silently drop it
    for path, is_dir in [
        ("requirements.txt", False),
        ("trials/data", True),
        ("trials/data/__init__.py", False),
        ("spaces", True),
        ("platform/launch.py", False),
    ]:
        assert not rsync_excluded(path, is_dir, patterns), path
    shipped = [
        p.relative_to(ROOT).as_posix()
        for top in ("spaces", "trials", "analysis", "platform")
        for p in (ROOT / top).rglob("*.py")
    ]
    dropped = [p for p in shipped if rsync_excluded(p, False, patterns)]
    assert not dropped


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")
def test_real_rsync_with_rays_arguments(cfg, tmp_path):
    """The same filter arguments `ray up` builds, given to the real rsync on a mock checkout."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    src, dst = tmp_path / "src", tmp_path / "dst"
    files = [
        ".venv/bin/python",
        "runs/study/mlflow.db",
        "data/Market-1501/x.jpg",
        ".git/HEAD",
        "trials/__pycache__/x.cpython-311.pyc",
        "requirements.txt",
        "trials/data/__init__.py",
        "trials/data/market.py",
        "spaces/cells.py",
        "platform/launch.py",
    ]
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_text("x")
    options = {"rsync_exclude": cfg["rsync_exclude"], "rsync_filter": cfg["rsync_filter"]}
    args = SSHCommandRunner._create_rsync_filter_args(None, options)
    subprocess.run(["rsync", "-a", *args, f"{src}/", f"{dst}/"], check=True)
    copied = {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()}
    assert copied == {
        "requirements.txt",
        "trials/data/__init__.py",
        "trials/data/market.py",
        "spaces/cells.py",
        "platform/launch.py",
    }

"""cluster.yaml is a real `ray up` definition: it passes Ray's own config check (offline) and it holds
what users rely on: autoscaling GPU workers, the project's pinned install, a Ray head that also serves
MLflow, workers joining that head, and no local venv/run/data folders shipped to the nodes."""

import copy
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_YAML = ROOT / "cluster.yaml"
REMOTE_PROJECT = "~/msinet"
GPU_FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Everything here must work offline: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def raw() -> dict:
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


def prepared(cfg: dict) -> dict:
    """Ray's own path: `ray up` runs prepare_config (defaults.yaml merge, no cloud calls) and then
    validate_config (ray-schema.json + cross-field checks). The AWS bootstrap (boto3) comes later."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(cfg))
    validate_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def cfg(raw) -> dict:
    return prepared(raw)


def commands(cmds: list[str], *needles: str) -> list[str]:
    return [c for c in cmds if all(n in c for n in needles)]


def only(cmds: list[str], *needles: str) -> str:
    found = commands(cmds, *needles)
    assert len(found) == 1, f"expected one command with {needles}, got {found}"
    return found[0]


def click_params(command, prog: str, cmd: str) -> dict:
    """The flags after `prog` in a shell command, parsed by the real CLI (click) without running it:
    unknown or malformed flags raise."""
    tokens = shlex.split(cmd.replace(";", " ; "))
    start = next(i for i in range(len(tokens)) if tokens[i : i + len(prog.split())] == prog.split())
    args = []
    for tok in tokens[start + len(prog.split()) :]:
        if tok in {";", "&", "&&", "||", "fi"} or tok[0] in "<>" or tok[:2] in {"2>", "1>"}:
            break
        args.append(tok)
    return command.make_context(prog, args).params


# --- Ray's schema check --------------------------------------------------------------------------


def test_prepare_config_is_offline_and_does_not_need_boto3(raw):
    before = "boto3" in sys.modules
    prepared(raw)  # the autouse fixture turns any connection into a failure
    assert ("boto3" in sys.modules) == before


def test_cluster_yaml_passes_rays_schema(cfg):
    assert cfg["cluster_name"] == "msinet-nas"
    assert cfg["provider"]["type"] == "aws"
    assert cfg["provider"]["region"] and cfg["provider"]["availability_zone"]
    assert cfg["max_workers"] >= 1 and cfg["idle_timeout_minutes"] > 0
    assert cfg["auth"]["ssh_user"] == "ubuntu"


@pytest.mark.parametrize(
    "typo",
    [
        ("top", "idle_timeout_minute"),  # misspelled top-level key
        ("node_type", "min_worker"),  # misspelled key inside a node type
        ("auth", "ssh_privte_key"),  # misspelled auth key
    ],
)
def test_misspelled_keys_fail_validation(raw, typo):
    where, key = typo
    bad = copy.deepcopy(raw)
    if where == "top":
        bad[key] = bad.pop("idle_timeout_minutes")
    elif where == "node_type":
        worker = next(n for n in bad["available_node_types"] if n != bad["head_node_type"])
        bad["available_node_types"][worker][key] = bad["available_node_types"][worker].pop("min_workers")
    else:
        bad["auth"][key] = bad["auth"].pop("ssh_private_key")
    with pytest.raises(jsonschema.ValidationError, match=key):
        prepared(bad)


def test_wrong_types_fail_validation(raw):
    bad = copy.deepcopy(raw)
    bad["max_workers"] = "eight"
    with pytest.raises(jsonschema.ValidationError):
        prepared(bad)


def test_no_docker(raw, cfg):
    assert "docker" not in raw
    assert not cfg["docker"]  # defaults.yaml's empty docker section: commands run on the AMI itself


# --- nodes ---------------------------------------------------------------------------------------


def is_gpu_instance(instance_type: str) -> bool:
    return instance_type.split(".")[0] in GPU_FAMILIES


def test_head_is_cpu_only_and_takes_no_trials(cfg):
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert not is_gpu_instance(head["node_config"]["InstanceType"])
    assert head["resources"].get("CPU") == 0  # every trial asks for >= 1 CPU, so none lands here
    assert head["max_workers"] == 0


def test_autoscaling_gpu_worker_type(cfg):
    workers = {n: t for n, t in cfg["available_node_types"].items() if n != cfg["head_node_type"]}
    gpu = {
        n: t
        for n, t in workers.items()
        if t["resources"].get("GPU", 0) > 0 or is_gpu_instance(t["node_config"]["InstanceType"])
    }
    assert gpu, f"no GPU worker type among {list(workers)}"
    for name, t in gpu.items():
        assert t["min_workers"] == 0, f"{name}: GPU workers must scale from zero"
        assert 1 <= t["max_workers"] <= cfg["max_workers"], name


def test_all_nodes_use_one_ami_and_key(raw):
    node_configs = [t["node_config"] for t in raw["available_node_types"].values()]
    assert len({c["ImageId"] for c in node_configs}) == 1
    assert len({c["KeyName"] for c in node_configs}) == 1


# --- what runs on the nodes ------------------------------------------------------------------------


def test_project_is_synced_to_every_node(cfg):
    assert Path(cfg["file_mounts"][REMOTE_PROJECT]) == Path(".")
    assert (ROOT / "requirements.txt").is_file()


def test_setup_builds_python311_venv_and_installs_requirements(cfg):
    setup = cfg["setup_commands"]
    only(setup, "python3.11 -m venv")
    install = only(setup, "pip install", "-r")
    assert re.search(rf"pip install (-\S+ )*-r {re.escape(REMOTE_PROJECT)}/requirements\.txt$", install)
    # prepare_config merges the common setup into both node roles
    assert install in cfg["head_setup_commands"] and install in cfg["worker_setup_commands"]


def test_ray_pin_in_setup_matches_requirements(cfg):
    pins = dict(
        re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )
    in_yaml = re.findall(r"ray\[[^\]]*\]==([\w.]+)", " ".join(cfg["setup_commands"]))
    assert in_yaml, "setup_commands should install ray with the cluster extras"
    assert set(in_yaml) == {pins["ray"]}


def mlflow_server_args(cmd: str) -> tuple:
    """(wrapper args, `mlflow server` params) of the head's MLflow command: the wrapper's own parser, then the
    real `mlflow server` CLI (click) on exactly the command the wrapper runs."""
    import study_mlflow_server
    from mlflow.cli import server

    tokens = shlex.split(cmd.replace(";", " ; "))
    start = next(i for i, tok in enumerate(tokens) if tok.endswith("platform/study_mlflow_server.py")) + 1
    end = next(i for i in range(start, len(tokens)) if tokens[i] in {";", "&", ">"} or tokens[i][0] in "<>")
    args, rest = study_mlflow_server.parse_args(tokens[start:end])
    command = study_mlflow_server.server_command(rest)
    assert command[1] == "server"
    return args, server.make_context("mlflow server", command[2:]).params


def test_head_starts_ray_head_then_mlflow(cfg):
    from ray.scripts.scripts import start

    head = cfg["head_start_ray_commands"]
    assert head[0].strip() == "ray stop"
    ray_head = only(head, "ray start", "--head")
    params = click_params(start, "ray start", ray_head)
    assert params["head"] and params["port"] == 6379
    assert params["autoscaling_config"] == "~/ray_bootstrap_config.yaml"

    mlflow = only(head, "study_mlflow_server.py")
    assert head.index(mlflow) > head.index(ray_head)
    _, params = mlflow_server_args(mlflow)
    assert params["host"] == "0.0.0.0"  # reachable from the workers
    assert params["port"] not in {6379, 8076, 8265, 10001}
    assert params["backend_store_uri"].startswith("sqlite:///$HOME/")
    assert params["artifacts_destination"] and params["serve_artifacts"]
    # in the background, detached from the ssh session, so `ray up` returns
    assert re.search(r"nohup \S+python \S+platform/study_mlflow_server\.py", mlflow)
    assert re.search(r"< ?/dev/null &", mlflow)
    assert subprocess.run(["bash", "-n", "-c", mlflow]).returncode == 0


def test_launch_hint_matches_mlflow_port(cfg):
    port = mlflow_server_args(only(cfg["head_start_ray_commands"], "study_mlflow_server.py"))[1]["port"]
    text = CLUSTER_YAML.read_text()
    assert "platform/launch.py --study" in text and "--address auto" in text
    assert f"--tracking-uri http://<head-ip>:{port}" in text
    assert "--storage-path s3://" in text


# --- security: Ray token, dashboard on loopback, MLflow accounts -------------------------------------------


TOKEN = "~/.ray/auth_token"  # where `ray get-auth-token --generate` writes, and where Ray looks by default


def test_ray_token_is_shipped_to_every_node_and_kept_private(raw, cfg):
    assert raw["file_mounts"][TOKEN] == TOKEN  # from the user's machine; the head passes it on to the workers
    for role in ("head_setup_commands", "worker_setup_commands"):
        setup = cfg[role]
        assert f"chmod 600 {TOKEN}" in setup, role
        bashrc = only(setup, "RAY_AUTH_MODE=token", ".bashrc")  # the driver's and `ray status`'s shells too
        assert subprocess.run(["bash", "-n", "-c", bashrc]).returncode == 0
    text = CLUSTER_YAML.read_text()
    assert f"ray get-auth-token --generate >/dev/null && chmod 600 {TOKEN}" in text  # the documented first step


def test_every_ray_start_requires_the_token(cfg):
    starts = [c for c in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2
    for cmd in starts:
        assert re.search(r"(^|[;&|]\s*)RAY_AUTH_MODE=token ray start ", cmd), cmd


def test_dashboard_listens_on_the_heads_loopback_only(cfg):
    from ray.scripts.scripts import start

    params = click_params(start, "ray start", only(cfg["head_start_ray_commands"], "ray start", "--head"))
    assert params["dashboard_host"] == "127.0.0.1"  # `ray dashboard cluster.yaml` forwards it over SSH
    assert params["include_dashboard"] is not False
    lines = CLUSTER_YAML.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if "--dashboard-host=127.0.0.1" in ln)
    assert any("EDIT" in ln and "--dashboard-host=0.0.0.0" in ln for ln in lines[i - 6:i])  # the one opt-out


def test_mlflow_server_has_accounts_and_checks_the_host(cfg):

    _, params = mlflow_server_args(only(cfg["head_start_ray_commands"], "study_mlflow_server.py"))
    assert params["app_name"] == "basic-auth"
    port = params["port"]
    hosts = params["allowed_hosts"].split(",")
    assert hosts[1:] == [f"localhost:{port}", f"127.0.0.1:{port}"]
    private = hosts[0].rsplit(":", 1)
    assert private[1] == str(port) and private[0].startswith("$(hostname -I")  # the head's private address


CREDENTIALS = "~/.mlflow/credentials"  # MLflow's own login file: what platform/study_credentials.py writes


def test_mlflow_login_is_shipped_to_every_node_and_read_from_the_file(raw, cfg, tmp_path, monkeypatch):
    """The login file travels like the token; the real setup line, run twice in a fake home on a file copied at
    mode 644, leaves it 600 (folder 700); MLflow's own reader then logs in as admin, and the head's server
    takes its admin password from the same file. No shell is given a login variable."""
    import study_credentials
    from mlflow.utils.credentials import read_mlflow_creds

    assert raw["file_mounts"][CREDENTIALS] == CREDENTIALS
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    path = Path(CREDENTIALS).expanduser()
    password = study_credentials.ensure_login(path)  # made on "your machine", copied by file_mounts
    path.chmod(0o644)
    path.parent.chmod(0o755)
    for role in ("head_setup_commands", "worker_setup_commands"):
        line = only(cfg[role], f"chmod 600 {CREDENTIALS}")
        for _ in range(2):  # `ray up` again
            subprocess.run(["bash", "-c", line], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=True)
        assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert tuple(read_mlflow_creds()) == ("admin", password)
    wrapper, _ = mlflow_server_args(only(cfg["head_start_ray_commands"], "study_mlflow_server.py"))
    assert wrapper.credentials.expanduser() == path
    assert not any("MLFLOW_TRACKING" in c for c in cfg["head_setup_commands"] + cfg["worker_setup_commands"])


def test_the_postgresql_alternative_is_exact(cfg):
    """The commented PostgreSQL variant of the head: its two setup commands are valid bash, and the MLflow
    command with the replacement it names is a valid `mlflow server` command on a PostgreSQL store."""
    lines = CLUSTER_YAML.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("head_setup_commands:"))
    setup = [ln.strip()[len("# - "):] for ln in lines[start:start + 12] if ln.strip().startswith("# - ")]
    assert len(setup) == 2 and "install -y -q postgresql" in setup[0] and "createdb" in setup[1]
    for command in setup:
        assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0, command
    text = " ".join(ln.strip().lstrip("#") for ln in lines[start:start + 12])
    old, new = re.search(r'replace "(--backend-store-uri [^"]+)" by\s+"(--backend-store-uri [^"]+)"', text).groups()
    mlflow = only(cfg["head_start_ray_commands"], "study_mlflow_server.py")
    assert old in mlflow
    _, params = mlflow_server_args(mlflow.replace(old, new))
    assert params["backend_store_uri"] == "postgresql:///mlflow" and params["app_name"] == "basic-auth"


def test_no_secret_or_password_in_the_cluster_file(raw):
    text = CLUSTER_YAML.read_text()
    for key in ("MLFLOW_TRACKING_PASSWORD=", "MLFLOW_AUTH_ADMIN_PASSWORD", "RAY_AUTH_TOKEN=", "admin_password =",
                "mlflow_tracking_password ="):
        assert key not in text, key


def test_workers_join_the_head(cfg):
    from ray.scripts.scripts import start

    head_port = click_params(start, "ray start", only(cfg["head_start_ray_commands"], "--head"))["port"]
    workers = cfg["worker_start_ray_commands"]
    assert workers[0].strip() == "ray stop"
    join = only(workers, "ray start")
    params = click_params(start, "ray start", join)
    assert params["address"] == f"$RAY_HEAD_IP:{head_port}" and not params["head"]


def test_start_and_setup_commands_are_valid_bash(cfg):
    for cmd in cfg["head_setup_commands"] + cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)


# --- every value the user must change is marked ----------------------------------------------------


def test_placeholders_are_marked_edit():
    lines = CLUSTER_YAML.read_text().splitlines()
    placeholder = re.compile(r"YOUR-|REPLACE")
    flagged = 0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") or not placeholder.search(line):
            continue
        flagged += 1
        context = lines[max(0, i - 8) : i + 1]
        assert any("EDIT" in c for c in context), f"line {i + 1} has a placeholder but no EDIT note: {line}"
    assert flagged >= 4  # AMI, key pair (x2), bucket, account id
    for key in ("region:", "availability_zone:", "InstanceType:"):
        i = next(i for i, ln in enumerate(lines) if ln.strip().startswith(key))
        assert any("EDIT" in c for c in lines[max(0, i - 8) : i + 1]), key

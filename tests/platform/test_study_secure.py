"""The smoke study with security on, as on a `ray up cluster.yaml` cluster: a two-node Ray cluster started with
`ray start` and a generated token on both nodes and the driver, and an MLflow server with accounts
(platform/study_mlflow_server.py, the same wrapper cluster.yaml starts on the head) on 127.0.0.1.

The secrets are made as docs/studies.md tells users to, on "your machine" (a home folder of its own): the Ray
token (`ray get-auth-token --generate`) and the MLflow login (`python platform/study_credentials.py`, into
~/.mlflow/credentials). Each node gets its own home with copies of both files at mode 600, as cluster.yaml's
file_mounts do. No secret is in any environment variable: the server, the driver and every trial read the
MLflow login from ~/.mlflow/credentials where they run.

One launch serves several tests: it runs both nodes' trials, logs parent and child runs through the login, and
then every param, tag, artefact file, the launch record, the Tune folder and both nodes' Ray folders (session
logs, runtime-env agent logs included) are scanned for the two secrets. Teardown stops exactly the processes
started here.
"""

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.net import free_port
from tests.processes import BIN, ROOT, clean_env, group_alive, make_ray_token, start_group, stop_group, wait_for

# as short as the point allows: trials of both kinds on both nodes, their records in the secured server
SHORT = ["--set", "search.config.epochs=4", "--set", "retrain.config.epochs=2", "--set",
         "retrain.config.eval_interval=2"]
pytestmark = pytest.mark.slow


def http(url: str, login: tuple[str, str] | None = None, host: str | None = None) -> int:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


# --- the secrets and the services ------------------------------------------------------------------------


SECRET_FILES = (".ray/auth_token", ".mlflow/credentials")


@pytest.fixture(scope="module")
def user_home(tmp_path_factory) -> Path:
    """The user's machine: the cluster's Ray token and MLflow login, made as docs/studies.md says."""
    home = tmp_path_factory.mktemp("user-home")
    make_ray_token(home)
    made = subprocess.run([sys.executable, "platform/study_credentials.py"], cwd=ROOT,
                          env=clean_env(HOME=str(home)), capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return home


@pytest.fixture(scope="module")
def node_homes(tmp_path_factory, user_home) -> dict[str, Path]:
    """Each node's home with what cluster.yaml's file_mounts copy there (kept at mode 600 by its setup)."""
    homes = {}
    for node in ("head", "node2"):
        home = homes[node] = tmp_path_factory.mktemp(f"{node}-home")
        for name in SECRET_FILES:
            (home / name).parent.mkdir(mode=0o700, parents=True)
            shutil.copyfile(user_home / name, home / name)
            (home / name).chmod(0o600)
    return homes


@pytest.fixture(scope="module")
def ray_token(user_home) -> Path:
    return user_home / ".ray" / "auth_token"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, node_homes) -> dict:
    """The head's server; its admin password is the one in the head's ~/.mlflow/credentials."""
    work = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    server = start_group([sys.executable, "platform/study_mlflow_server.py", "--home", str(work / "home"),
                          "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                          "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                          "--artifacts-destination", str(work / "artifacts"),
                          "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"], log,
                         clean_env(HOME=str(node_homes["head"])))
    try:
        wait_for(lambda: http(uri + "/health") == 200, "the MLflow server", log)
        from study_credentials import read_login

        user, password = read_login(node_homes["head"] / ".mlflow" / "credentials")
        assert user == "admin" and password
        yield {"uri": uri, "port": port, "password": password, "home": work / "home",
               "artifacts": work / "artifacts", "log": log, "head_home": node_homes["head"]}
    finally:
        stop_group(server)


@pytest.fixture(scope="module")
def two_node_cluster(node_homes):
    """A head and a second node, each `ray start --block` in its own process group, one CPU each, token on,
    each with its own home (the token at Ray's default place, ~/.ray/auth_token).

    Own temp dirs (short paths: Ray's sockets live there), so that no `ray.init()` elsewhere on this machine
    mistakes this cluster for its local instance."""
    env = clean_env(RAY_AUTH_MODE="token", HOME=str(node_homes["head"]))
    temp = Path(tempfile.mkdtemp(prefix="rayt-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    nodes = []
    try:
        for name, args in (("head", ["--head", "--port", str(port), "--include-dashboard", "false"]),
                           ("node2", ["--address", address])):
            log = temp / f"{name}.log"
            nodes.append(start_group([str(BIN / "ray"), "start", *args, "--temp-dir", str(temp / name), *common],
                                     log, {**env, "HOME": str(node_homes[name])}))
            wait_for(lambda log=log: "Ray runtime started" in log.read_text(), f"ray start ({name})", log)
        yield address, env, temp
    finally:
        for node in reversed(nodes):
            stop_group(node)
        left = [n.pid for n in nodes if group_alive(n.pid)]
        if not left:
            shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the groups {left} survived teardown"


@pytest.fixture(scope="module")
def secure_launch(tmp_path_factory, two_node_cluster, mlflow_server) -> dict:
    """The smoke study on the cluster, launched on the head (its home: token and MLflow login in files, none in the
    environment), tracked in the server."""
    address, env, _ = two_node_cluster
    run_dir = tmp_path_factory.mktemp("secure") / "runs"
    login = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": mlflow_server["password"]}
    result = subprocess.run([sys.executable, "platform/launch.py", "--study", "smoke", "--run-dir", str(run_dir),
                             "--address", address, "--tracking-uri", mlflow_server["uri"], *SHORT], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=900)
    return {"result": result, "run_dir": run_dir, "login": login, "uri": mlflow_server["uri"]}


@pytest.fixture
def logged_in(monkeypatch, secure_launch):
    for name, value in secure_launch["login"].items():
        monkeypatch.setenv(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(secure_launch["uri"])


# --- refusals --------------------------------------------------------------------------------------------


def test_mlflow_server_refuses_requests_without_the_login(mlflow_server):
    uri, password = mlflow_server["uri"], mlflow_server["password"]
    api = uri + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http(uri + "/health") == 200  # the only thing anyone may ask
    assert http(api) == 401
    assert http(api, ("admin", "not-the-password")) == 401
    assert http(api, ("admin", password)) == 200
    assert http(api, ("admin", password), host=f"attacker.example:{mlflow_server['port']}") == 403  # --allowed-hosts
    # the secrets stay readable by their owner only: the CSRF key in --home, the login in ~/.mlflow
    home, credentials = mlflow_server["home"], mlflow_server["head_home"] / ".mlflow" / "credentials"
    assert (home.stat().st_mode & 0o777) == 0o700 and (credentials.parent.stat().st_mode & 0o777) == 0o700
    for path in (home / "flask_secret_key", credentials):
        assert (path.stat().st_mode & 0o777) == 0o600, path
    assert password not in mlflow_server["log"].read_text()
    # MLflow's own client reads that file: nothing to export in a shell
    read = subprocess.run([sys.executable, "-c", "from mlflow.utils.credentials import read_mlflow_creds; "
                           "print(*read_mlflow_creds())"], env=clean_env(HOME=str(mlflow_server["head_home"])),
                          capture_output=True, text=True, check=True)
    assert read.stdout.split() == ["admin", password]


@pytest.mark.parametrize("login", [{}, {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "wrong"},
                                   {"file": "wrong"}], ids=["no-login", "wrong-password", "wrong-credentials-file"])
def test_launch_without_a_valid_login_stops_at_once(mlflow_server, tmp_path, login):
    home = tmp_path / "home"  # a machine without the cluster's ~/.mlflow/credentials
    if "file" in login:
        (home / ".mlflow").mkdir(parents=True)
        (home / ".mlflow" / "credentials").write_text("[mlflow]\nmlflow_tracking_username = admin\n"
                                                      "mlflow_tracking_password = wrong\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "platform/launch.py", "--study", "smoke", "--run-dir", str(tmp_path),
                             "--tracking-uri", mlflow_server["uri"]], cwd=ROOT,
                            env=clean_env(HOME=str(home), **{k: v for k, v in login.items() if k != "file"}),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: tracking: the MLflow server at " + mlflow_server["uri"])
    assert "HTTP 401" in result.stderr and "~/.mlflow/credentials" in result.stderr
    assert ("no login is set" if not login else "wrong user name or password") in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "wrong" not in result.stderr.replace("wrong user name", "")  # the password given is not echoed
    assert not (tmp_path / "launches").exists() and time.monotonic() - started < 60  # before any work


def test_ray_cluster_refuses_a_client_without_the_token(two_node_cluster):
    address, env, _ = two_node_cluster
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    ok = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.split()[-1] == "2", ok.stderr[-2000:]
    other = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN_PATH"}
    wrong = subprocess.run([sys.executable, "-c", probe, address], env={**other, "RAY_AUTH_TOKEN": "0" * 64},
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0
    assert "AuthenticationError" in wrong.stderr and "InvalidAuthToken" in wrong.stderr, wrong.stderr[-3000:]
    assert "Failed to connect to Ray cluster" in wrong.stderr
    # nor can a machine with another token join as a node
    temp = tempfile.mkdtemp(prefix="rayt-", dir="/tmp")
    try:
        join = subprocess.run([str(BIN / "ray"), "start", "--address", address, "--num-cpus", "1", "--temp-dir", temp,
                               "--disable-usage-stats"], env={**other, "RAY_AUTH_TOKEN": "0" * 64},
                              capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert join.returncode != 0 and "InvalidAuthToken" in join.stdout + join.stderr, join.stderr[-3000:]
    after = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True,
                           timeout=120)
    assert after.stdout.split()[-1] == "2", after.stderr[-2000:]


# --- one secure launch -----------------------------------------------------------------------------------


def test_smoke_study_on_a_secure_two_node_cluster(secure_launch, logged_in):
    result = secure_launch["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = logged_in.get_experiment_by_name("smoke")
    runs = logged_in.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("msinet.role") == "launch"]
    trials = [r for r in runs if r.data.tags.get("msinet.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 4 and {r.data.tags["msinet.kind"] for r in trials} == {"search", "retrain"}
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("error"))
        assert 0.0 <= run.data.metrics["val/mAP"] <= 1.0
    # no login in any environment: trials on both nodes logged in with their node's ~/.mlflow/credentials
    assert len({r.data.tags["env.ray_node"] for r in trials}) == 2
    retrain = next(r for r in trials if r.data.tags["msinet.kind"] == "retrain")
    assert {"genotype.json", "metrics.json", "checkpoint"} <= {a.path for a in logged_in.list_artifacts(
        retrain.info.run_id)}


def test_no_secret_is_recorded_anywhere_a_run_keeps(secure_launch, logged_in, mlflow_server, ray_token,
                                                   two_node_cluster):
    assert secure_launch["result"].returncode == 0, secure_launch["result"].stderr[-3000:]
    secrets = {"MLflow password": mlflow_server["password"], "Ray token": ray_token.read_text().strip()}
    experiment = logged_in.get_experiment_by_name("smoke")
    values = []
    for run in logged_in.search_runs([experiment.experiment_id], max_results=100):
        values += [*run.data.params.items(), *run.data.tags.items(), run.info.run_name or ""]
    files = [p for p in mlflow_server["artifacts"].rglob("*") if p.is_file()]
    records = list((secure_launch["run_dir"] / "launches").rglob("*.json"))
    tune = [p for p in (secure_launch["run_dir"] / "tune").rglob("*") if p.is_file()]
    ray_folders = [p for p in two_node_cluster[2].rglob("*") if p.is_file() and not p.is_symlink()]  # every node
    assert len(values) > 50 and len(files) >= 10 and len(records) == 1 and tune  # the scan has material
    agent_logs = [p for p in ray_folders if p.name.startswith("runtime_env_agent")]
    assert {p.relative_to(two_node_cluster[2]).parts[0] for p in agent_logs} == {"head", "node2"}
    assert any(p.name == "model.pt" for p in files) and any(p.name == "plan.json" for p in files)
    text = {"params and tags": json.dumps(values), "launch record": records[0].read_text(),
            "launch output": secure_launch["result"].stdout + secure_launch["result"].stderr}
    blobs = {str(p): p.read_bytes() for p in [*files, *tune, *ray_folders]}
    for what, secret in secrets.items():
        for where, body in text.items():
            assert secret not in body, f"the {what} is in the {where}"
        found = [path for path, data in blobs.items() if secret.encode() in data]
        assert not found, f"the {what} is in {found}"
    # the scan finds a secret where one is: the head's own credentials file holds the password
    assert secrets["MLflow password"].encode() in (mlflow_server["head_home"] / ".mlflow" / "credentials").read_bytes()

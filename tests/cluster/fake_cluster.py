"""The shipped cluster.yaml, simulated on this machine by Ray's own fake multi-node autoscaler.

`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=FAKE.yaml` runs Ray's real autoscaler with its
`fake_multinode` node provider: every worker node it launches is a real raylet on this machine whose CPUs and
GPUs are the node type's, as logical resources. FAKE.yaml is generated from cluster.yaml, so the tests follow
the file: the head's resources (CPU 0: no trial there), each worker type's CPUs and GPUs from its instance type
(study_cluster.INSTANCE_TYPES, the table the plan uses), its min_workers, and its max_workers capped at
MAX_WORKERS. The cluster has its own --temp-dir, ports and Ray token (token authentication on, as on a
`ray up` cluster: every node, and every driver, holds it), and is stopped through its process group by PID:
never `ray stop`, never ray.cluster_utils.AutoscalingCluster (whose start runs `ray stop --force`, which would
stop every other Ray instance on the machine).

The simulator's quirks, and what is done about each:
* the provider starts nodes at `gcs_address`, which must be given (the head's address);
* it rejects `memory` as a node resource: node types carry CPU and GPU only;
* setup commands and file mounts are not run: every node runs this checkout's virtual environment;
* a node's "GPU" has no CUDA behind it: trials run with `device: cpu`, except the one test that checks that a
  trial holding a GPU without CUDA fails;
* every node's memory monitor watches the whole machine, so on a machine shared with other work it kills trials
  for memory that others use, and Ray Tune 2.60 cannot retry a trial killed that way (its OutOfMemoryError is
  neither an actor nor a task error: the launch stops). It is off here (RAY_memory_monitor_refresh_ms=0);
* all nodes share the head's session folder, so one runtime-resources folder: Ray re-extracts an uploaded
  working_dir package whenever a node starts, under the running trials of another node (their lazy imports
  then fail). Launches here pass --code-in-place, which gives Ray the checkout as a `local://` working_dir:
  used where it is on every node, never extracted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.net import free_port
from tests.processes import BIN, ROOT, clean_env, group_members, start_group, stop_group, wait_for

CLUSTER_YAML = ROOT / "cluster.yaml"
HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head's type
MAX_WORKERS = 2  # cluster.yaml allows 8; two simulated nodes are what this machine holds, and all the tests need
IDLE_TIMEOUT_MINUTES = 0.5  # cluster.yaml's 10 minutes, shortened so that a test can wait for the scale-down
NODE_ID_ENV = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"  # the fake provider sets it on every process of a node


def fake_config(gcs_address: str, cluster_yaml: Path = CLUSTER_YAML) -> dict:
    """The autoscaler config that mirrors cluster.yaml's node types on the fake provider."""
    from study_cluster import read_cluster_yaml  # platform/ is on sys.path (tests/cluster/conftest.py)

    raw = yaml.safe_load(cluster_yaml.read_text())
    cluster = read_cluster_yaml(cluster_yaml)
    types = {}
    for node in cluster.node_types:
        resources = {"CPU": int(node.cpus), **({"GPU": int(node.gpus)} if node.gpus else {})}
        if node.head:
            types[HEAD_TYPE] = {"resources": resources, "node_config": {}, "max_workers": 0}
        else:
            spec = raw["available_node_types"][node.name]
            types[node.name] = {"resources": resources, "node_config": {},
                                "min_workers": int(spec.get("min_workers", 0)),
                                "max_workers": min(node.max_nodes, MAX_WORKERS)}
    return {"cluster_name": raw["cluster_name"], "max_workers": min(int(raw["max_workers"]), MAX_WORKERS),
            "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES, "upscaling_speed": float(raw.get("upscaling_speed", 1.0)),
            "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                         "disable_launch_config_check": True, "gcs_address": gcs_address},
            "available_node_types": types, "head_node_type": HEAD_TYPE, "auth": {"ssh_user": "ubuntu"},
            "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
            "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
            "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
            "worker_start_ray_commands": []}


@dataclass
class FakeCluster:
    address: str
    env: dict[str, str]  # a driver's environment: the token, and nothing of another cluster
    config: dict
    temp: Path
    head: subprocess.Popen
    started_s: float  # seconds `ray start` took until the head was up

    def nodes(self) -> list[dict]:
        """Every node the GCS has known (tests/cluster/node_table.py), alive or dead."""
        out = subprocess.run([sys.executable, str(Path(__file__).with_name("node_table.py")), self.address],
                             env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def workers_alive(self) -> list[dict]:
        return [n for n in self.nodes() if n["alive"] and not n["head"]]

    def launch(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`python platform/launch.py --address ADDRESS --code-in-place ARGS` as a driver of this cluster."""
        return subprocess.run(self.launch_command(*args), cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def launch_command(self, *args: str) -> list[str]:
        return [sys.executable, "platform/launch.py", "--address", self.address, "--code-in-place", *args]

    def kill_node(self, node_id: str) -> list[int]:
        """A spot reclaim: SIGKILL to every process of one worker node (its raylet, object store, agents, trial
        workers), found by the node id the fake provider put in their environment."""
        killed = []
        for pid in group_members(self.head.pid):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"{NODE_ID_ENV}={node_id}".encode() in environ:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return killed

    def wait_for_workers(self, count: int, timeout: float) -> float:
        """Seconds until exactly `count` worker nodes are alive (AssertionError after `timeout`)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if len(self.workers_alive()) == count:
                return time.monotonic() - started
            time.sleep(2)
        raise AssertionError(f"{count} worker node(s) alive not reached in {timeout:.0f}s: {self.workers_alive()}")


def start(token: Path) -> FakeCluster:
    """The head (CPU as cluster.yaml's head, no GPU) with the autoscaler; no worker node until trials ask."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="rayf-", dir="/tmp"))  # short: Ray's socket paths live under it
    config = fake_config(address)
    (temp / "fake_cluster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    head_cpus = config["available_node_types"][HEAD_TYPE]["resources"]["CPU"]
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    log = temp / "head.log"
    began = time.monotonic()
    head = start_group([str(BIN / "ray"), "start", "--head", "--port", str(port), "--autoscaling-config",
                        str(temp / "fake_cluster.yaml"), "--num-cpus", str(head_cpus), "--num-gpus", "0",
                        "--temp-dir", str(temp / "ray"), "--include-dashboard", "false",
                        "--dashboard-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
                        "--disable-usage-stats", "--block"], log,
                       {**env, "RAY_FAKE_CLUSTER": "1", "RAY_memory_monitor_refresh_ms": "0"})
    try:
        wait_for(lambda: "Ray runtime started" in log.read_text() or head.poll() is not None,
                 "ray start (fake cluster head)", log)
        assert head.poll() is None, f"ray start (fake cluster head) exited:\n{log.read_text()[-3000:]}"
    except BaseException:
        stop_group(head)
        raise
    return FakeCluster(address, env, config, temp, head, time.monotonic() - began)


def stop(cluster: FakeCluster) -> list[int]:
    """Stop the head and every node it launched (one process group); returns the pids that survived."""
    stop_group(cluster.head)
    return group_members(cluster.head.pid)

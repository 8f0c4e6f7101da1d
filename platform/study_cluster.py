"""The cluster a launch runs on, as its plan sees it: node types, and how a phase's trials fit on them.

What a trial asks for decides how many share a node: `min(node CPUs / cpu, node GPUs / gpu)` (docs/studies.md,
*How the cluster is used*). The node types come from

* `--cluster cluster.yaml`, read offline: each type's `resources` when given, else the CPUs, GPUs and memory
  of its `InstanceType` from INSTANCE_TYPES (the types cluster.yaml lists);
* the connected cluster (`--address`): the autoscaler's own config when this machine runs the autoscaler (the
  head of a `ray up` cluster, where the launcher runs), else the nodes that are up now (then a trial none of
  them holds only warns: nodes may still join);
* this machine, for a local Ray instance.

A phase whose trial fits on no node type would wait forever for a node no autoscaler can add: that is an
error before anything runs, naming the phase, the request and the largest node type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# vCPUs, GPUs, memory (GiB) and GPU model of the instance types cluster.yaml names (AWS's published figures).
INSTANCE_TYPES: dict[str, tuple[int, int, int, str]] = {
    "m5.2xlarge": (8, 0, 32, ""),
    "g5.xlarge": (4, 1, 16, "A10G"),
    "g5.2xlarge": (8, 1, 32, "A10G"),
    "g5.12xlarge": (48, 4, 192, "A10G"),
    "g6.xlarge": (4, 1, 16, "L4"),
    "p4d.24xlarge": (96, 8, 1152, "A100"),
}
IDLE_GPU_WARNING = 0.25  # a phase leaving more than this share of a node's GPU idle is warned about


class ClusterError(ValueError):
    """A cluster file that cannot be read, or a trial no node type can hold; the message says which."""


@dataclass(frozen=True)
class NodeType:
    name: str
    cpus: float
    gpus: float
    max_nodes: int  # how many of this type the cluster may run at once (the head: 1)
    gpu_model: str = ""  # "A10G"; empty when unknown (a logical GPU, or no GPU)
    memory_gib: float | None = None
    instance: str = ""
    head: bool = False

    def describe(self) -> str:
        what = f"{self.cpus:g} CPU, {self.gpus:g} GPU{' ' + self.gpu_model if self.gpu_model else ''}"
        if self.memory_gib:
            what += f", {self.memory_gib:g} GiB"
        return f"{self.name} ({self.instance + ': ' if self.instance else ''}{what})"


@dataclass(frozen=True)
class Cluster:
    source: str  # where the node types were read, for the plan and the errors
    node_types: tuple[NodeType, ...]
    complete: bool = True  # False: only the nodes up now are known, so a request beyond them only warns
    remedy: str = "or add a larger node type: no autoscaler can start a node for it, so it would wait forever"

    def largest(self) -> NodeType:
        return max(self.node_types, key=lambda t: (t.gpus, t.cpus))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "complete": self.complete,
                "node_types": [dataclasses.asdict(t) for t in self.node_types]}


@dataclass(frozen=True)
class Layout:
    """How one phase's trials sit on the node type they use."""

    node: NodeType
    per_node: int  # trials at once on one node
    limit: str  # "CPU", "GPU" or "CPU and GPU": what caps per_node
    idle_cpus: float  # per node, with per_node trials on it
    idle_gpus: float
    trials: int
    concurrent: int  # trials at once on the whole cluster
    nodes: int  # nodes those need
    uses_gpu: bool = True

    @property
    def per_gpu(self) -> float | None:
        return self.per_node / self.node.gpus if self.node.gpus and self.uses_gpu else None

    def to_dict(self) -> dict[str, Any]:
        return {"node_type": self.node.name, "trials_per_node": self.per_node, "trials_per_gpu": self.per_gpu,
                "limit": self.limit, "idle_cpus_per_node": self.idle_cpus, "idle_gpus_per_node": self.idle_gpus,
                "trials": self.trials, "concurrent": self.concurrent, "nodes": self.nodes}


def read_cluster_yaml(path: Path) -> Cluster:
    """The node types of a `ray up` file (or of the config an autoscaler runs), read offline."""
    where = f"--cluster {path}"
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ClusterError(f"{where}: cannot be read as YAML: {error}") from None
    types = document.get("available_node_types") if isinstance(document, dict) else None
    if not isinstance(types, dict) or not types:
        raise ClusterError(f"{where}: expected a Ray cluster file with available_node_types (like cluster.yaml)")
    head_name = document.get("head_node_type")
    cap = int(document.get("max_workers", 10**6))
    node_types = []
    for name, spec in types.items():
        spec = spec or {}
        instance = str((spec.get("node_config") or {}).get("InstanceType", ""))
        resources = dict(spec.get("resources") or {})
        known = INSTANCE_TYPES.get(instance)
        if known is None and "CPU" not in resources:
            table = ", ".join(INSTANCE_TYPES)
            raise ClusterError(f"{where}: node type {name}: instance type {instance or '(none)'!r} is not in the "
                               f"table of known types ({table}); give its resources, e.g. resources: "
                               "{CPU: 4, GPU: 1}")
        cpus, gpus, memory, model = known or (0, 0, 0, "")
        head = name == head_name
        node_types.append(NodeType(
            name=str(name), cpus=float(resources.get("CPU", cpus)), gpus=float(resources.get("GPU", gpus)),
            max_nodes=1 if head else min(int(spec.get("max_workers", cap)), cap),
            gpu_model=model if float(resources.get("GPU", gpus)) else "",
            memory_gib=float(memory) if memory else None, instance=instance, head=head))
    return Cluster(f"{path} (read offline)", tuple(node_types))


def connected_cluster() -> Cluster:
    """The connected Ray cluster (`ray.init` done): the autoscaler's node types when its config is readable
    here, else the nodes up now (incomplete: more may join)."""
    import ray

    live = _live_node_types(ray.nodes())
    config = _autoscaler_config()
    if config is None:
        return Cluster("the connected cluster (its nodes up now; the autoscaler's config is not readable on "
                       "this machine: run the launcher on the head, or pass --cluster cluster.yaml)",
                       tuple(live), complete=False)
    cluster = read_cluster_yaml(config)
    return Cluster(f"the connected cluster (autoscaler config {config})", cluster.node_types)


def local_machine(cpus: float | None = None, gpus: float | None = None) -> Cluster:
    """This machine as a one-node cluster: the given counts (Ray's), else what it has."""
    import os

    names = _nvidia_gpus() if gpus is None or gpus > 0 else []
    node = NodeType("this machine", float(cpus if cpus is not None else os.cpu_count() or 1),
                    float(len(names) if gpus is None else gpus), 1, names[0] if names else "")
    return Cluster("this machine (a local Ray instance)", (node,),
                   remedy="or --gpus-per-trial 0, or --scale smoke, on this machine (to plan for a cluster instead: "
                          "--cluster cluster.yaml)")


def fit(resources: dict[str, float], node: NodeType) -> tuple[int, str]:
    """(trials one node of this type holds at once, the resource that limits it)."""
    by_cpu = math.floor(node.cpus / resources["cpu"] + 1e-9)
    if resources["gpu"] <= 0:
        return by_cpu, "CPU"
    by_gpu = math.floor(node.gpus / resources["gpu"] + 1e-9)
    return min(by_cpu, by_gpu), "CPU" if by_cpu < by_gpu else "GPU" if by_gpu < by_cpu else "CPU and GPU"


def layout(resources: dict[str, float], trials: int, max_concurrent: int | None, cluster: Cluster) -> Layout | None:
    """Where a phase's trials run: the node type holding most of them at once (None: no type holds one)."""
    best = None
    for node in cluster.node_types:
        per_node, limit = fit(resources, node)
        if per_node > 0 and (best is None or per_node > best[1]):
            best = (node, per_node, limit)
    if best is None:
        return None
    node, per_node, limit = best
    concurrent = min(trials, max_concurrent or trials, per_node * node.max_nodes)
    return Layout(node, per_node, limit, idle_cpus=node.cpus - per_node * resources["cpu"],
                  idle_gpus=node.gpus - per_node * resources["gpu"], trials=trials, concurrent=concurrent,
                  nodes=math.ceil(concurrent / per_node) if concurrent else 0, uses_gpu=resources["gpu"] > 0)


def impossible(phase: str, resources: dict[str, float], cluster: Cluster) -> str:
    """The error for a trial no node type of the cluster can hold."""
    big = cluster.largest()
    per_trial = f"{resources['cpu']:g} CPU + {resources['gpu']:g} GPU"
    return (f"phase {phase!r} asks for {per_trial} per trial, but no node of {cluster.source} can hold one: the "
            f"largest node type is {big.describe()}. Lower the request (--set {phase}.resources.cpu=N, "
            f"--set {phase}.resources.gpu=F) {cluster.remedy}")


def idle_warning(phase: str, resources: dict[str, float], plan: Layout) -> str | None:
    """More than a quarter of a GPU idle on every node the phase uses: which resource to change."""
    if plan.node.gpus == 0 or plan.idle_gpus <= IDLE_GPU_WARNING * plan.node.gpus + 1e-9:
        return None
    if not plan.uses_gpu:
        fix = (f"its trials ask for no GPU; give them a share (--set {phase}.resources.gpu=F) or run them on a "
               "node type without GPUs")
    elif plan.limit == "CPU":
        better = plan.node.cpus / math.ceil(plan.node.gpus / resources["gpu"]) if resources["gpu"] else None
        fix = (f"the CPUs are the limit; ask for fewer per trial (--set {phase}.resources.cpu={better:g} fits "
               f"{plan.node.gpus / resources['gpu']:g} trials per node)" if better and better >= 1 else
               "the CPUs are the limit; use a node type with more CPUs per GPU")
    else:
        fix = f"raise {phase}.resources.gpu so that the trials fill the GPU"
    return (f"phase {phase!r} leaves {plan.idle_gpus:g} of the {plan.node.gpus:g} GPU of each {plan.node.name} node "
            f"idle ({plan.per_node} trial(s) of {resources['cpu']:g} CPU + {resources['gpu']:g} GPU per node): {fix}")


def _live_node_types(nodes: list[dict[str, Any]]) -> list[NodeType]:
    """The alive nodes that offer CPUs, grouped by shape."""
    shapes: dict[tuple[float, float, str], int] = {}
    for node in nodes:
        resources = node.get("Resources") or {}
        if not node.get("Alive") or not resources.get("CPU"):
            continue
        model = next((k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")), "")
        key = (float(resources["CPU"]), float(resources.get("GPU", 0)), model)
        shapes[key] = shapes.get(key, 0) + 1
    return [NodeType(f"node of {cpus:g} CPU, {gpus:g} GPU", cpus, gpus, count, model)
            for (cpus, gpus, model), count in shapes.items()]


def _autoscaler_config() -> Path | None:
    """The config file the cluster's autoscaler runs with: its process id is in the autoscaler's status (GCS),
    its `--autoscaling-config` argument in that process's command line, readable on the head."""
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        status = json.loads(_internal_kv_get("__autoscaling_status") or b"{}")
        pid = int(status["monitor_pid"])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except (KeyError, ValueError, TypeError, OSError):
        return None
    for arg in argv:
        if arg.startswith("--autoscaling-config="):
            path = Path(arg.split("=", 1)[1]).expanduser()
            return path if path.is_file() else None
    return None


def _nvidia_gpus() -> list[str]:
    """The names of this machine's NVIDIA GPUs (CUDA_VISIBLE_DEVICES is Ray's business), without importing torch."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []

"""Real servers on loopback for the tests and benchmarks: moto's S3-compatible server and a PostgreSQL 15
cluster, each started on 127.0.0.1 with its own folder and a free port, and stopped by its PID.

Clients reach them the standard way, nothing platform-specific: the AWS variables (`AWS_ENDPOINT_URL`, keys,
region) for S3, and a `postgresql://USER@127.0.0.1:PORT/DB` URI without a password, which libpq completes from
the password file named by `PGPASSFILE` (~/.pgpass on a real machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.net import free_port
from tests.processes import group_alive

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "msinet"


@dataclass
class Server:
    process: subprocess.Popen
    folder: Path
    env: dict[str, str] = field(default_factory=dict)  # what a client process needs to reach it
    address: str = ""
    secret: str = ""  # a password the server holds, for the tests that scan for it
    stop_signal: int = signal.SIGTERM
    group: bool = False  # started in a process group of its own (its PID is the group's id): stop all of it

    def stop(self, grace: float = 60) -> None:
        """stop_signal to our PID (and its group), SIGKILL if anything lingers; then its folder."""
        send = (lambda sig: os.killpg(self.process.pid, sig)) if self.group else self.process.send_signal
        for sig, wait in ((self.stop_signal, grace), (signal.SIGKILL, 30)):
            try:
                send(sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self._alive():
                time.sleep(0.3)
            if not self._alive():
                break
        shutil.rmtree(self.folder, ignore_errors=True)

    def _alive(self) -> bool:
        if self.process.poll() is None:  # also reaps the leader, whose zombie would keep its group alive
            return True
        return self.group and group_alive(self.process.pid)


def _wait(ready, what: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{what} did not come up in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


# --- S3 ------------------------------------------------------------------------------------------------


def start_s3() -> Server:
    """moto's standalone S3 server (in memory) on 127.0.0.1; `env` holds the standard AWS variables."""
    folder = Path(tempfile.mkdtemp(prefix="msinet-s3-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = folder / "moto.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _wait(lambda: _answers(endpoint), "moto_server", process, log)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "msinet-test", "AWS_SECRET_ACCESS_KEY":
           "msinet-test-secret", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    return Server(process, folder, env, endpoint)


def _answers(url: str) -> bool:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def make_bucket(s3: Server, name: str):
    """A fresh bucket; returns a boto3 S3 client for it (boto3 reads the endpoint from AWS_ENDPOINT_URL)."""
    import boto3

    session = boto3.session.Session(aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=s3.env["AWS_SECRET_ACCESS_KEY"],
                                    region_name=s3.env["AWS_DEFAULT_REGION"])
    client = session.client("s3", endpoint_url=s3.address)
    client.create_bucket(Bucket=name)
    return client


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under the prefix."""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return found


# --- MLflow ---------------------------------------------------------------------------------------------


def start_mlflow(backend: str, artifacts: str, env: dict[str, str], workers: int = 1) -> Server:
    """The study's MLflow server with accounts (platform/study_mlflow_server.py, as cluster.yaml starts it on the
    head) on 127.0.0.1, artefacts proxied to `artifacts`. Its admin password is the one in
    HOME/.mlflow/credentials of `env` (generated there when missing), read back into `secret`."""
    folder = Path(tempfile.mkdtemp(prefix="msinet-mlflow-"))
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "platform" / "study_mlflow_server.py"), "--home",
                                    str(folder / "home"), "--host", "127.0.0.1", "--port", str(port), "--workers",
                                    str(workers), "--backend-store-uri", backend, "--artifacts-destination",
                                    artifacts, "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"],
                                   cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = Server(process, folder, {}, address, group=True)
    try:
        _wait(lambda: _answers(address + "/health"), "the MLflow server", process, log, timeout=180)
    except RuntimeError:
        server.stop()
        raise
    credentials = Path(env["HOME"]) / ".mlflow" / "credentials"
    server.secret = next(line.split("=", 1)[1].strip() for line in credentials.read_text().splitlines()
                         if line.startswith("mlflow_tracking_password"))
    return server


# --- PostgreSQL ----------------------------------------------------------------------------------------


def start_postgres(max_connections: int = 200) -> Server:
    """A PostgreSQL 15 cluster of its own: initdb into a temporary folder with a generated password for the
    superuser `msinet` (SCRAM), then `postgres` listening on 127.0.0.1 only. As root the server runs as the
    `postgres` user (it refuses root). `env` holds PGPASSFILE, a password file in libpq's format."""
    folder = Path(tempfile.mkdtemp(prefix="msinet-pg-"))
    data, log = folder / "data", folder / "postgres.log"
    password = secrets.token_urlsafe(24)
    (folder / "pwfile").write_text(password + "\n")
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(folder, user, user)
        shutil.chown(folder / "pwfile", user, user)
    initdb = subprocess.run([str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "scram-sha-256",
                             "--pwfile", str(folder / "pwfile"), "-E", "UTF8", "--no-sync"], user=user,
                            capture_output=True, text=True, timeout=300)
    (folder / "pwfile").unlink()
    if initdb.returncode:
        raise RuntimeError(f"initdb failed:\n{initdb.stderr[-3000:]}")
    port = free_port()
    with open(log, "w") as out:
        if user:
            shutil.chown(log, user, user)
        process = subprocess.Popen([str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(port), "-c",
                                    "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c",
                                    f"max_connections={max_connections}"], user=user, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    passfile = folder / "pgpass"
    passfile.write_text(f"127.0.0.1:{port}:*:{PG_USER}:{password}\n")
    passfile.chmod(0o600)
    # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)
    server = Server(process, folder, {"PGPASSFILE": str(passfile)}, f"127.0.0.1:{port}", password, signal.SIGINT)
    ready = [str(POSTGRES_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
    _wait(lambda: subprocess.run(ready, timeout=10).returncode == 0, "postgres", process, log)
    return server


def create_database(pg: Server, name: str) -> str:
    """A fresh database on the cluster; returns its URI (no password in it: libpq reads PGPASSFILE)."""
    import psycopg

    host, port = pg.address.split(":")
    with psycopg.connect(host=host, port=port, user=PG_USER, dbname="postgres", passfile=pg.env["PGPASSFILE"],
                         autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{PG_USER}@{pg.address}/{name}"

"""The study's MLflow tracking server with accounts: `mlflow server --app-name basic-auth` plus its secrets.

`cluster.yaml` starts it on the head; the tests start the same thing on 127.0.0.1. The `admin` account's
password is the one in MLflow's credentials file (`--credentials`, default ~/.mlflow/credentials: on a
cluster the file made on your machine by platform/study_credentials.py and copied to every node; generated
there at the first start when missing). The Flask secret key (CSRF) is generated at the first start into
--home (mode 600), which also holds the accounts database. Nothing secret is passed on the command line
(where `ps` shows it) or written anywhere else. The arguments after --home are `mlflow server`'s own.

    python platform/study_mlflow_server.py --home ~/mlflow --host 0.0.0.0 --port 5000 \\
        --backend-store-uri sqlite:///$HOME/mlflow/mlflow.db --artifacts-destination s3://BUCKET/mlflow \\
        --allowed-hosts "$(hostname -I | cut -d' ' -f1):5000,localhost:5000,127.0.0.1:5000"

Clients log in as `admin`: MLflow's client reads the same credentials file on every node, so the launcher,
the trials and `python -m analysis` need no variable set.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path

from study_credentials import ADMIN, default_path, ensure_login

SECRETS = ("flask_secret_key",)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        prog="python platform/study_mlflow_server.py",
        description="Start `mlflow server --app-name basic-auth` whose admin password is the one in MLflow's "
                    "credentials file. Every other argument goes to `mlflow server` unchanged.",
        epilog="Clients (launcher, trials, analysis) read the same login from ~/.mlflow/credentials.")
    p.add_argument("--home", type=Path, required=True,
                   help="folder for the Flask secret key and the accounts database (created with mode 700)")
    p.add_argument("--credentials", type=Path, default=default_path(),
                   help="MLflow's credentials file holding the admin password (default ~/.mlflow/credentials; "
                        "generated, mode 600, when missing)")
    args, rest = p.parse_known_args(argv)
    if "--app-name" in rest or any(a.startswith("--app-name=") for a in rest):
        p.error("--app-name is always basic-auth here; leave it out")
    return args, rest


def ensure_secrets(home: Path) -> dict[str, str]:
    """Each secret read from home/NAME, or generated into it (owner read/write only) the first time."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)
    values = {}
    for name in SECRETS:
        path = home / name
        if not path.exists() or not path.read_text().strip():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
        values[name] = path.read_text().strip()
    return values


def write_auth_config(home: Path) -> Path:
    """The basic-auth app's settings: accounts in home/basic_auth.db; signed-in users may read every run."""
    path = home / "basic_auth.ini"
    path.write_text("[mlflow]\ndefault_permission = READ\n"
                    f"database_uri = sqlite:///{home.resolve() / 'basic_auth.db'}\n"
                    f"admin_username = {ADMIN}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def server_command(rest: list[str]) -> list[str]:
    """`mlflow server` (the one installed beside this Python) with the basic-auth app and the given arguments."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [str(mlflow) if mlflow.exists() else (shutil.which("mlflow") or "mlflow"), "server",
            "--app-name", "basic-auth", *rest]


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(argv)
    home = args.home.expanduser().resolve()
    values = ensure_secrets(home)
    credentials = args.credentials.expanduser()
    try:
        password = ensure_login(credentials)
    except (OSError, ValueError) as error:
        print(f"error: --credentials: {error}", file=sys.stderr)
        return 2
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(home)),
           # used only while the accounts database is empty, to create the admin account; the server's own
           # environment, never a Ray runtime environment
           "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN, "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": values["flask_secret_key"]}
    command = server_command(rest)
    print(f"accounts: {home}/basic_auth.db (admin password in {credentials}, which MLflow's clients read)",
          file=sys.stderr, flush=True)
    os.execve(command[0], command, env)  # this process becomes the server: its PID is the server's


if __name__ == "__main__":
    sys.exit(main())

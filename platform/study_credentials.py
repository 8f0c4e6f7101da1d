"""The study's MLflow login, kept where MLflow's own client looks for it: `~/.mlflow/credentials` (mode 600).

Made once on your machine, beside the Ray token, and copied to every node by `cluster.yaml`'s file_mounts:

    python platform/study_credentials.py        # writes ~/.mlflow/credentials unless it exists

The head's server (platform/study_mlflow_server.py) creates its `admin` account with this password, and every
MLflow client on every node (the launcher, the trials, `python -m analysis`, `mlflow`) reads the login from the
file itself. So the password never travels in an environment variable (which Ray's runtime environment would
write into its logs on every node) and is never printed. Standard library only: it runs before any install.
"""

from __future__ import annotations

import argparse
import configparser
import os
import secrets
import sys
from pathlib import Path

ADMIN = "admin"
SECTION = "mlflow"
USER_KEY, PASSWORD_KEY = "mlflow_tracking_username", "mlflow_tracking_password"  # MLflow's names, lower case


def default_path() -> Path:
    """MLflow's client reads exactly this file (mlflow.utils.credentials): no other place would be read."""
    return Path("~/.mlflow/credentials").expanduser()


def read_login(path: Path) -> tuple[str | None, str | None]:
    """(user, password) from the file, None where absent."""
    if not path.is_file():
        return None, None
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    if not parser.has_section(SECTION):
        return None, None
    return parser[SECTION].get(USER_KEY) or None, parser[SECTION].get(PASSWORD_KEY) or None


def ensure_login(path: Path) -> str:
    """The admin password in the file, generated into it (folder 700, file 600) when there is none yet."""
    user, password = read_login(path)
    if password and user == ADMIN:
        path.chmod(0o600)
        return password
    if password:
        raise ValueError(f"{path} holds a login for {user!r}; the study's server needs the {ADMIN!r} account's")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[{SECTION}]\n{USER_KEY} = {ADMIN}\n{PASSWORD_KEY} = {password}\n")
    path.chmod(0o600)
    return password


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python platform/study_credentials.py",
                                description="Write the study's MLflow admin login into MLflow's credentials file "
                                            "(mode 600) unless it holds one; the password is never printed.")
    p.add_argument("--path", type=Path, default=default_path(), help="default: ~/.mlflow/credentials")
    args = p.parse_args(argv)
    try:
        ensure_login(args.path)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"MLflow login ({ADMIN}): {args.path} (mode 600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

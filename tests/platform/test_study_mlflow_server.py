"""platform/study_mlflow_server.py and study_credentials.py without starting a server: the secrets they keep,
the login file MLflow's client reads, the accounts settings MLflow reads, the command it runs. (The server
itself, with refusals and a study logging through it: test_study_secure.py.)"""

import stat
import subprocess
import sys
from pathlib import Path

import pytest
import study_credentials
import study_mlflow_server
import study_tracking

ROOT = Path(__file__).resolve().parents[2]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_and_readable_by_the_owner_only(tmp_path):
    home = tmp_path / "mlflow"
    first = study_mlflow_server.ensure_secrets(home)
    assert set(first) == {"flask_secret_key"} and len(first["flask_secret_key"]) >= 32
    assert mode(home) == 0o700 and mode(home / "flask_secret_key") == 0o600
    assert study_mlflow_server.ensure_secrets(home) == first  # a restart keeps the key
    (home / "flask_secret_key").write_text("")
    assert study_mlflow_server.ensure_secrets(home)["flask_secret_key"] not in ("", first["flask_secret_key"])


def test_the_login_file_is_mlflows_own_made_once_and_never_printed(tmp_path, monkeypatch):
    from mlflow.utils.credentials import read_mlflow_creds

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in study_tracking.LOGIN_ENV:
        monkeypatch.delenv(name, raising=False)
    made = subprocess.run([sys.executable, "platform/study_credentials.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    path = tmp_path / ".mlflow" / "credentials"
    assert study_credentials.default_path() == path and mode(path) == 0o600 and mode(path.parent) == 0o700
    user, password = read_mlflow_creds()  # what every MLflow client (launcher, trials, analysis) reads
    assert user == "admin" and len(password) >= 32 and password not in made.stdout + made.stderr
    assert study_credentials.ensure_login(path) == password  # a second run keeps it (the server's account)
    path.write_text("[mlflow]\nmlflow_tracking_username = someone\nmlflow_tracking_password = x\n")
    with pytest.raises(ValueError, match="'someone'"):
        study_credentials.ensure_login(path)


def test_auth_config(tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    home = tmp_path / "mlflow"
    study_mlflow_server.ensure_secrets(home)
    # MLflow's own reader of the basic-auth settings: accounts beside the secrets, not in the server's cwd
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(study_mlflow_server.write_auth_config(home)))
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    config = read_auth_config()
    assert config.database_uri == f"sqlite:///{home.resolve() / 'basic_auth.db'}"
    assert config.admin_username == "admin" and config.admin_password is None  # never written to the file
    assert config.default_permission == "READ"


def test_command_is_mlflow_server_with_basic_auth_and_the_given_arguments():
    args, rest = study_mlflow_server.parse_args(["--home", "~/mlflow", "--host", "0.0.0.0", "--port", "5000"])
    assert str(args.home) == "~/mlflow" and rest == ["--host", "0.0.0.0", "--port", "5000"]
    assert args.credentials == study_credentials.default_path()
    command = study_mlflow_server.server_command(rest)
    assert command[0].endswith("mlflow") and command[1:] == ["server", "--app-name", "basic-auth", *rest]


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--home", "x", "--app-name", "none"],
                                  ["--home", "x", "--app-name=none"]])
def test_missing_home_or_another_app_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        study_mlflow_server.parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_login_variables_set_are_named(monkeypatch):
    for name in study_tracking.LOGIN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert study_tracking.login_from_env() == []
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")
    assert study_tracking.login_from_env() == ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]

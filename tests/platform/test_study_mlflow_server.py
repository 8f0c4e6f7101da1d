"""platform/study_mlflow_server.py without starting a server: the secrets it keeps, the accounts settings MLflow
reads, the command it runs, and the login launch.py hands to the trials. (The server itself, with refusals and
a study logging through it: test_study_secure.py.)"""

import stat

import pytest
import study_mlflow_server
import study_tracking


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_and_readable_by_the_owner_only(tmp_path):
    home = tmp_path / "mlflow"
    first = study_mlflow_server.ensure_secrets(home)
    assert set(first) == {"admin_password", "flask_secret_key"}
    assert first["admin_password"] != first["flask_secret_key"] and len(first["admin_password"]) >= 32
    assert mode(home) == 0o700
    for name in first:
        assert mode(home / name) == 0o600
    assert study_mlflow_server.ensure_secrets(home) == first  # a restart keeps the accounts' password
    (home / "admin_password").write_text("")
    assert study_mlflow_server.ensure_secrets(home)["admin_password"] not in ("", first["admin_password"])


def test_client_env_and_auth_config(tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    home = tmp_path / "mlflow"
    password = study_mlflow_server.ensure_secrets(home)["admin_password"]
    env = study_mlflow_server.write_client_env(home, password)
    assert mode(env) == 0o600
    assert env.read_text() == ("export MLFLOW_TRACKING_USERNAME=admin\n"
                               f"export MLFLOW_TRACKING_PASSWORD='{password}'\n")
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
    command = study_mlflow_server.server_command(rest)
    assert command[0].endswith("mlflow") and command[1:] == ["server", "--app-name", "basic-auth", *rest]


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--home", "x", "--app-name", "none"],
                                  ["--home", "x", "--app-name=none"]])
def test_missing_home_or_another_app_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        study_mlflow_server.parse_args(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_login_handed_to_trials_is_only_what_is_set(monkeypatch):
    for name in study_tracking.CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    assert study_tracking.credentials_env() == {}
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")
    assert study_tracking.credentials_env() == {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "pw"}

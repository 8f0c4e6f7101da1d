"""Links to the MLflow UI: the runs table (not the traces overview) and the command that serves a local store."""

from analysis.links import dashboard_command, is_server, runs_table_url, ui_base_url, ui_command


def test_runs_table_url_points_at_the_experiments_runs_tab():
    assert runs_table_url("http://127.0.0.1:5000", "7") == "http://127.0.0.1:5000/#/experiments/7/runs"
    assert runs_table_url("http://head:5000/", "12") == "http://head:5000/#/experiments/12/runs"


def test_ui_command_serves_a_sqlite_or_file_store_on_the_port():
    uri = "sqlite:////work/main/runs/mlflow.db"
    assert ui_command(uri) == f"mlflow ui --backend-store-uri {uri} --port 5000"
    assert ui_command("file:///tmp/mlruns", port=5123) == "mlflow ui --backend-store-uri file:///tmp/mlruns --port 5123"
    assert ui_base_url(uri, 5123) == "http://127.0.0.1:5123"


def test_a_path_with_spaces_is_quoted_for_the_shell():
    assert ui_command("sqlite:////tmp/my runs/mlflow.db") == (
        "mlflow ui --backend-store-uri 'sqlite:////tmp/my runs/mlflow.db' --port 5000")


def test_a_server_needs_no_command_only_its_url():
    assert is_server("http://head:5000") and not is_server("sqlite:////x.db")
    assert ui_command("http://head:5000/") == "http://head:5000"
    assert ui_base_url("https://mlflow.example.org") == "https://mlflow.example.org"


def test_dashboard_command_serves_the_optuna_storage_locally():
    assert dashboard_command("sqlite:////tmp/my runs/optuna.db", port=8123) == (
        "optuna-dashboard 'sqlite:////tmp/my runs/optuna.db' --host 127.0.0.1 --port 8123")

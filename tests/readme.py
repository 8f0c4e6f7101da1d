"""The README's commands as the tests run them: its bash blocks, read from the file, in a checkout-like folder."""

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\.venv/bin/python -m trials\.\S+ .*$", re.MULTILINE)
DEPLOYMENT = "## From a trained model to deployment"
MAIN_JOB = ".venv/bin/python platform/launch.py --study smoke"  # what `make run` runs


def _blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def readme_commands() -> list[str]:
    """The standalone trial and data commands, in order (the deployment section is run whole, elsewhere)."""
    text = (ROOT / "README.md").read_text()
    before, _, after = text.partition(DEPLOYMENT)
    rest = after.split("\n## ", 1)[1] if "\n## " in after else ""
    return [line.split("  #")[0].strip() for block in _blocks(before + rest) for line in COMMAND.findall(block)]


def deployment_script() -> str:
    """The deployment section's bash, whole: the smoke study (the main job), then its champion to deployment."""
    section = (ROOT / "README.md").read_text().partition(DEPLOYMENT)[2].split("\n## ", 1)[0]
    return "\n".join(_blocks(section))


def checkout(folder: Path) -> None:
    """A checkout-like folder: the code copied (launch.py finds the repository from its own path), .venv
    linked, data/ and runs/ written fresh."""
    for name in ("spaces", "trials", "analysis", "platform"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / ".venv").symlink_to(ROOT / ".venv")

"""Which images a command works on: every image under a folder, or the paths listed in a text file."""

from __future__ import annotations

from pathlib import Path

from trials.deploy.inference import DeployError
from trials.text_files import TextFileError, read_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(spec: str | Path, flag: str = "--images") -> list[Path]:
    """A folder: its image files, recursively, in sorted order. A file: one path per line (relative paths
    are taken from the list's folder; blank lines and `#` comments skipped). Nothing found is an error."""
    spec = Path(spec).expanduser()
    if spec.is_dir():
        paths = sorted(p for p in spec.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DeployError(f"{flag} {spec}: no image files ({', '.join(IMAGE_SUFFIXES)}) in that folder")
        return paths
    if not spec.is_file():
        raise DeployError(f"{flag} {spec}: no such folder or list file")
    try:
        text = read_text(spec, "image list")
    except TextFileError as error:
        raise DeployError(f"{flag} {error}") from None
    paths = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        path = path if path.is_absolute() else spec.parent / path
        if not path.is_file():
            raise DeployError(f"{flag} {spec}, line {number}: {line}: no such image file")
        paths.append(path)
    if not paths:
        raise DeployError(f"{flag} {spec}: the list names no images")
    return paths

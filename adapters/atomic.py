"""Write a directory of files atomically: a reader never sees a half-written one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_directory(directory: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (name -> bytes) into a temporary sibling, then swap it in."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory

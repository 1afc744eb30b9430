"""Small file helpers shared by every writer: atomic writes and output-path checks."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from dsae_cli.errors import DsaeError


def check_output_path(path: str | Path, inputs: tuple = (), suffixes: tuple[str, ...] = ()) -> Path:
    """Validate an output path: its folder must exist, it must not be a folder or one of the inputs."""
    out = Path(path)
    if out.is_dir():
        raise DsaeError(f"output {out} is a directory; give a file name such as {out / ('out' + (suffixes[0] if suffixes else ''))}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise DsaeError(f"output folder {parent} does not exist; create it first (mkdir -p {parent})")
    if suffixes and out.suffix.lower() not in suffixes:
        raise DsaeError(f"output {out} must end in {' or '.join(suffixes)}")
    for inp in inputs:
        try:
            same = Path(inp).exists() and out.exists() and os.path.samefile(out, inp)
        except OSError:
            same = False
        if same or Path(inp).resolve() == out.resolve():
            raise DsaeError(f"output {out} is also an input; choose another output name so the input is kept")
    return out


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    Readers never see a half-written file and an existing file survives a failed write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files; give the result the mode a plain open() would (or the old file's)
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_csv(path: str | Path, header: list, rows: list) -> Path:
    """Write a header and rows as a UTF-8 CSV file, atomically."""
    import csv

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return path

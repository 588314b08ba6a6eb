"""Writing files so that a crash never leaves one half-written.

A file is written under a temporary name beside its destination, flushed to disk, given
the permissions the umask allows (temporary files are created 0600), renamed into place,
and the directory is flushed too. Used for checkpoints, the corpus cache and exports; no
torch import.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_beside(dest: Path) -> Path:
    """A new empty file ``.<name>.XXXX.tmp`` in ``dest``'s folder."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder in ``parent`` with the permissions the umask allows (mkdtemp makes 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, 0o777 & ~current_umask())
    return path


def commit(tmp: Path, dest: Path) -> None:
    """Flush the finished ``tmp`` and rename it to ``dest``."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), 0o666 & ~current_umask())  # temp files (and safetensors') are 0600
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def atomic_file(dest: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``with atomic_file(dest) as f: ...`` writes ``dest`` whole when the block ends, and
    not at all if it raises. The folder is made if missing."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dest)
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        commit(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(dest: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``dest``: readers see the old file or the new, never half."""
    with atomic_file(dest, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)

"""Atomic writes: a reader (or a run killed mid-write) sees the old file or the new one, never
half of one. Run dirs hold what a user would hate to lose: configs and evaluation tables."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0o022)  # read the process umask (the only way is to set it), then restore it
os.umask(_UMASK)


@contextmanager
def replaced_atomically(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; on success it is renamed over `path`, on
    an error removed. `suffix` keeps the extension for writers that read it (Pillow)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private (0600); a plain file would not be
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, then rename it over `path`."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)
    return Path(path)

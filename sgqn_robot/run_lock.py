"""One process per run dir: two `sgqn-train`s on the same run (a second `resume=true`, or an
orchestrator resuming a run someone started by hand) would interleave their checkpoints, replay
snapshots and metrics rows and leave a run that resumes from neither.

`hold_run_dir(run_dir)` takes an exclusive `flock` on `<run_dir>/.lock` for as long as the
context is open. The kernel drops the lock when the process ends, however it ends (SIGKILL, OOM,
power loss), so a crashed run never leaves a stale lock behind to be cleaned up by hand.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"


class RunDirBusy(RuntimeError):
    """The run dir is held by another live process."""


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` exclusively, or raise `RunDirBusy` naming the holder's pid."""
    with open(Path(run_dir) / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunDirBusy(
                f"{run_dir} is in use by another process (pid {holder}), e.g. a sgqn-train "
                "still running on it: wait for it to end, or stop it (Ctrl-C/SIGTERM save a "
                "checkpoint first) and then resume=true"
            ) from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield

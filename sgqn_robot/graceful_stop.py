"""Stop a training run cleanly on SIGTERM / Ctrl-C: finish the episode, checkpoint, exit 0.

Why: SLURM preemption, `timeout`, a scheduler's time slice and a user's Ctrl-C all end runs at
arbitrary steps; without this, everything since the last `snapshot_every` checkpoint is lost.
The first signal only sets a flag: the training loop reads it at the next episode end (where
checkpoints live) and an evaluation in progress polls it to abort, so the stop takes at most one
episode. A second signal stops at once: SIGINT raises KeyboardInterrupt (cleanup still runs),
SIGTERM takes its default action.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """`requested` turns (and stays) True after the first SIGTERM/SIGINT."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:  # second signal: the user means now
            if signum == signal.SIGINT:
                signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@contextmanager
def stop_on_signal() -> Iterator[StopRequest]:
    """Install the handlers for the duration of the block (main thread only: elsewhere, e.g. a
    run started from a worker thread, signals keep their default and `requested` stays False)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.signal(s, stop._handle) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

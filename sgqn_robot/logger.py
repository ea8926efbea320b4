"""Scalar logging to `<run>/metrics.csv` (long format: step, tag, value) and TensorBoard.

Long format because the metric set grows during a run (updates start after warm-up, SGQN's
auxiliary terms appear every other step); `pandas.read_csv(...).pivot_table(...)` gives the wide
table. On resume, rows past the checkpoint's step are dropped and TensorBoard purges them too
(rows at the step itself are kept by both), so the curves continue without the killed run's
orphaned tail.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

HEADER = ["step", "tag", "value"]


class Logger:
    """Appends scalars to the CSV (flushed per call) and to TensorBoard under `<run>/tb`."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        if resume_step is not None and self.path.exists():
            self._truncate(resume_step)
        fresh = not self.path.exists()
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(HEADER)
        # TensorBoard hides events at steps >= purge_step; the checkpoint step's rows stay.
        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge)

    def _truncate(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = [
                r for r in csv.reader(f) if len(r) == 3 and (r[0] == "step" or int(r[0]) <= step)
            ]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        tmp.replace(self.path)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self._csv.writerow([step, tag, f"{float(value):.6g}"])
            self._tb.add_scalar(tag, float(value), step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        self._tb.close()

"""`keep_freed_memory`: blocks of the sizes an update frees and re-allocates stay in the heap,
so re-allocating them no longer page-faults (measured in fresh processes, with and without)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sgqn_robot.malloc_reuse import keep_freed_memory

# 20 cycles of 12 float32 buffers of 1-32 MB (pages touched), freed in shuffled order, the way
# activations and gradients come and go; prints the page faults of the cycles after 3 warm-ups.
CHURN = """
import resource, sys, torch
from sgqn_robot.malloc_reuse import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
g = torch.Generator().manual_seed(0)
def cycle():
    sizes = torch.randint(2**18, 2**23, (12,), generator=g).tolist()
    bufs = [torch.empty(s).fill_(1.0) for s in sizes]
    for i in torch.randperm(len(bufs), generator=g).tolist():
        bufs[i] = None
for _ in range(3):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[-1])


def test_freed_blocks_are_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("the C library has no glibc mallopt")
    default, keep = _faults("default"), _faults("keep")
    # One cycle touches ~200 MB = ~50k pages; glibc's default hands most of it back each time.
    assert default > 20_000, f"the churn no longer faults by default ({default}); test is moot"
    assert keep < default / 5, (default, keep)

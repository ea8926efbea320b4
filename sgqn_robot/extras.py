"""One-line errors where the training extra is missing, and the console scripts that need it.

The bare wheel (the robot-PC install: numpy, onnxruntime, zarr) installs every console script, so
without this guard ``sgqn-train`` or ``sgqn-run --sim`` there dies in a traceback from deep inside
an import. Standard library only: the robot PC imports this module too.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# torch alone first, as in the Makefile: the exact pin takes the CPU build; anything else pulls CUDA
INSTALL_TRAIN_EXTRA = "pip install torch==2.13.0 && pip install 'sgqn-robot[train]'"


class MissingExtra(ImportError):
    """A package of the ``train`` extra is not installed; the message says how to install it."""


@contextmanager
def needs_train_extra(what: str) -> Iterator[None]:
    """Turn a missing third-party module inside the block into ``MissingExtra``.

    ``what`` says what needed it ("--sim needs the simulator"). A missing ``sgqn_robot`` module is
    a broken install, not a missing extra, so its traceback is kept.
    """
    try:
        yield
    except ModuleNotFoundError as e:
        if not e.name or e.name.split(".")[0] == "sgqn_robot":
            raise
        raise MissingExtra(
            f"{what}: no module named {e.name!r}; install the training extra: {INSTALL_TRAIN_EXTRA}"
        ) from e


def _launch(prog: str, module: str, needs: str) -> int | None:
    """Import ``module`` and run its ``main``; without the extra, one line on stderr and exit 2."""
    try:
        with needs_train_extra(f"this command needs {needs}"):
            main = importlib.import_module(module).main
    except MissingExtra as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return main()


def train() -> int | None:
    """Console script ``sgqn-train``."""
    return _launch("sgqn-train", "sgqn_robot.train", "torch, Hydra and the simulator")


def evaluate() -> int | None:
    """Console script ``sgqn-eval``."""
    return _launch("sgqn-eval", "sgqn_robot.evaluate", "torch, Hydra and the simulator")


def export() -> int | None:
    """Console script ``sgqn-export``."""
    return _launch("sgqn-export", "sgqn_robot.export.onnx_export", "torch, onnx and the simulator")

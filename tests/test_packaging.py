"""The one import root must survive a real wheel build, and the robot-PC install must stay lean."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from sgqn_robot.extras import MissingExtra, needs_train_extra

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (whl,) = out.glob("sgqn_robot-*.whl")
    return whl


def test_wheel_maps_envs_and_export_under_one_root(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "sgqn_robot/envs/__init__.py" in names
    assert "sgqn_robot/export/__init__.py" in names
    assert not any(n.startswith(("envs/", "export/", "tests/")) for n in names)


def test_bare_install_requires_no_torch_or_mujoco(wheel: Path) -> None:
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    base = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    names = {
        b.split(";")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower() for b in base
    }
    assert names <= {"numpy", "onnxruntime", "zarr"}, names
    assert not names & {"torch", "mujoco", "robosuite"}


def test_wheel_imports_from_a_throwaway_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # Dependencies come from the current environment as a plain path entry: its .pth files (and
    # with them the editable finder that points at this checkout) are *not* processed.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import sgqn_robot, sgqn_robot.envs, sgqn_robot.export;"
        "from sgqn_robot.config import CONFIG_DIR, compose_config;"
        "assert compose_config('train', ['task=peg_in_box']).task == 'peg_in_box';"
        "from sgqn_robot.envs.asset_paths import ASSETS_DIR;"
        "obs, _ = sgqn_robot.envs.make_env('reach').reset(seed=0); assert obs.std() > 0;"
        "print(sgqn_robot.envs.__file__);print(sgqn_robot.export.__file__);"
        "print(CONFIG_DIR);print(ASSETS_DIR)"
    )
    out = subprocess.check_output([str(py), "-c", code], text=True, cwd=tmp_path)
    for line in out.split():
        assert line.startswith(str(site)), out


# what the bare wheel (numpy + onnxruntime + zarr) lacks, as far as the console scripts reach
NOT_ON_THE_ROBOT_PC = ("torch", "hydra", "omegaconf", "onnx", "onnxscript", "mujoco", "gymnasium")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``[project.scripts]`` entry point with the training extra's packages missing."""
    module, func = PYPROJECT["scripts"][script].split(":")
    code = (
        f"import importlib, sys\nfor name in {NOT_ON_THE_ROBOT_PC!r}: sys.modules[name] = None\n"
        f"sys.argv = [{script!r}, *{args!r}]\n"
        f"sys.exit(getattr(importlib.import_module({module!r}), {func!r})())"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", ["sgqn-train", "sgqn-eval", "sgqn-export"])
def test_training_scripts_on_the_bare_install_name_what_to_install(script: str) -> None:
    out = _run_script(script)
    err = out.stderr.splitlines()
    assert out.returncode == 2 and len(err) == 1, out.stderr
    missing = re.search(r"no module named '(\w+)'", err[0])
    extra = re.search(r"pip install torch==2\.13\.0 && pip install 'sgqn-robot\[(\w+)\]'", err[0])
    assert err[0].startswith(f"{script}: error: this command needs ") and missing and extra, err
    assert missing[1] in NOT_ON_THE_ROBOT_PC and extra[1] in PYPROJECT["optional-dependencies"]


def test_runner_script_needs_nothing_from_the_training_extra() -> None:
    out = _run_script("sgqn-run", "--help")
    assert out.returncode == 0 and "--replay" in out.stdout, out.stderr


def test_only_a_missing_third_party_module_is_a_missing_extra() -> None:
    with pytest.raises(MissingExtra, match="needs X: no module named 'hydra'"):
        with needs_train_extra("needs X"):
            raise ModuleNotFoundError("No module named 'hydra'", name="hydra")
    with pytest.raises(ModuleNotFoundError) as err:
        with needs_train_extra("needs X"):
            import sgqn_robot.no_such_module  # noqa: F401
    assert not isinstance(err.value, MissingExtra)

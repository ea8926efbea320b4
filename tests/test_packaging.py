"""The one import root must survive a real wheel build, and the robot-PC install must stay lean."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

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

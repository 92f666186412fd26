"""Linters as tests (ROS convention): pyflakes and pycodestyle checks over the whole tree."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _ruff() -> str:
    exe = Path(sys.executable).with_name("ruff")
    found = str(exe) if exe.exists() else shutil.which("ruff")
    if not found:
        pytest.fail("ruff is not installed (it is pinned in requirements.txt)")
    return found


def test_ruff_clean():
    out = subprocess.run([_ruff(), "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_shell_scripts_parse():
    for script in ["bootstrap.sh", "scripts/ros_env.sh", "scripts/colcon_build.sh", ".ci/run"]:
        out = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert out.returncode == 0, f"{script}: {out.stderr}"

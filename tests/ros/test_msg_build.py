"""The colcon build of this ONE package: generated DepthStatus + our modules + lib/ppd_ros/depth_node.

Runs scripts/colcon_build.sh (a no-op when its stamp matches), then checks from a separate process
with only install/setup.bash sourced and a working directory outside the repo, so nothing can come
from the source tree: the trap in ros2_env.md ("Addendum: ONE package") is that the generated,
empty ppd_ros/__init__.py silently replaces ours when the install order is wrong.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "install"

PROBE = r"""
import json, os, sys
import ppd_ros
from ppd_ros.msg import DepthStatus
type(DepthStatus).__import_type_support__()
from rclpy.serialization import deserialize_message, serialize_message
m = DepthStatus(model="ppd", stage_names=["dit"], stage_latency_ms=[1.5], drop_reasons=["stale"], drop_counts=[2])
back = deserialize_message(serialize_message(m), DepthStatus)
import ppd_ros.ros.conversions, ppd_ros.ros.sync, ppd_ros.ros.frame_mailbox, ppd_ros.ros.bag
from ppd_ros.ros import messages
print(json.dumps({
    "pkg_file": ppd_ros.__file__, "version": getattr(ppd_ros, "__version__", None),
    "has_errors": hasattr(ppd_ros, "InputError"), "conv_file": ppd_ros.ros.conversions.__file__,
    "status_type": messages.STATUS_MSG_TYPE.__module__ + "." + messages.STATUS_MSG_TYPE.__name__,
    "roundtrip": [back.model, list(back.stage_names), list(back.drop_counts)],
    "depth_status_fields": list(DepthStatus.get_fields_and_field_types()),
}))
"""


@pytest.fixture(scope="module")
def built() -> Path:
    if shutil.which("colcon") is None:
        pytest.skip("colcon is not on PATH (pip install -r requirements-ros.txt, or apt ros-dev-tools)")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "colcon_build.sh")], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return INSTALL


def _clean_env() -> dict[str, str]:
    """The caller's environment minus every path pointing into the source tree or install/."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "LD_LIBRARY_PATH", "COLCON_PREFIX_PATH"):
        drop = (str(INSTALL), str(REPO) + "/ppd_ros")
        keep = [p for p in env.get(key, "").split(":") if p and not p.startswith(drop)]
        env[key] = ":".join(keep)
    venv = env.get("VIRTUAL_ENV")
    if venv and not env["AMENT_PREFIX_PATH"]:
        env["AMENT_PREFIX_PATH"] = venv  # must be set before install/setup.bash (ros2_env.md section 4)
    return env


def test_install_layout(built: Path) -> None:
    exe = built / "ppd_ros" / "lib" / "ppd_ros" / "depth_node"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert "ppd_ros.ros.depth_node" in exe.read_text()
    share = built / "ppd_ros" / "share" / "ppd_ros"
    assert (share / "package.xml").is_file() and (share / "msg" / "DepthStatus.msg").is_file()
    assert (share / "config" / "fastdds_localhost.xml").is_file()
    assert (built / "ppd_ros" / "share" / "ament_index" / "resource_index" / "packages" / "ppd_ros").is_file()


def test_generated_msg_and_our_modules_import_from_install(built: Path, tmp_path: Path) -> None:
    script = f". '{built / 'setup.bash'}' && exec python -c \"$PROBE\""
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env={**_clean_env(), "PROBE": PROBE},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    site = str(built / "ppd_ros" / "lib")
    assert info["pkg_file"].startswith(site), info  # the installed package, not the source tree
    assert info["conv_file"].startswith(site), info
    assert info["version"] and info["has_errors"], "ppd_ros/__init__.py was replaced by the generated one"
    assert info["status_type"] == "ppd_ros.msg._depth_status.DepthStatus"
    assert info["roundtrip"] == ["ppd", ["dit"], [2]]
    for field in ("header", "model", "mode", "window_index", "reference_stamps", "metric_scale",
                  "metric_scale_age_s", "stage_names", "stage_latency_ms", "drop_reasons", "drop_counts",
                  "frames_in", "frames_out"):
        assert field in info["depth_status_fields"], field


def test_build_is_skipped_when_nothing_changed(built: Path) -> None:
    runs = [subprocess.run(["bash", str(REPO / "scripts" / "colcon_build.sh")], cwd=REPO, capture_output=True,
                           text=True, timeout=600) for _ in range(2)]  # the first may catch up on an edit
    assert all(p.returncode == 0 for p in runs), [p.stderr[-2000:] for p in runs]
    assert runs[1].stdout == "" and runs[1].stderr == "", runs[1].stdout + runs[1].stderr

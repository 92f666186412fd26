"""Architecture rule: only ppd_ros/ros imports rclpy; the core imports on a machine without ROS."""
import ast
import subprocess
import sys

from .conftest import REPO

ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "builtin_interfaces", "diagnostic_msgs", "lifecycle_msgs",
               "geometry_msgs", "rosbags", "launch", "launch_ros", "message_filters", "cv_bridge")


def test_no_ros_imports_outside_ros_package():
    offenders = []
    for path in (REPO / "ppd_ros").rglob("*.py"):
        rel = path.relative_to(REPO / "ppd_ros")
        if rel.parts[0] == "ros":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{rel}: {n}" for n in names if n.split(".")[0] in ROS_MODULES]
    assert not offenders, offenders


def test_core_imports_with_ros_unavailable():
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in %r];"
            "import ppd_ros, ppd_ros.pipelines, ppd_ros.parity, ppd_ros.cli; print('ok')" % (ROS_MODULES,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

"""Helpers shared by the depth-node tests: fixture parameters, loopback-only DDS env, a probe node
that collects the node's outputs, and subprocess handling."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "fixtures" / "ppd" / "e2e_small" / "weights.safetensors"
REAL = SHARED / "data" / "real"
REAL_FRAMES = [REAL / "middlebury2014_motorcycle" / "left.png", REAL / "mrpt_kinect_bookshelf" / "rgb.png"]
FASTDDS_XML = REPO / "config" / "fastdds_localhost.xml"

# the small fixture model through the same code path as the official checkpoints
FIXTURE_PARAMS: dict[str, Any] = {
    "model": "checkpoints", "dit_checkpoint": str(WEIGHTS), "semantics_checkpoint": str(WEIGHTS),
    "dit_preset": "fixture_ppd_e2e_dit", "semantics_preset": "fixture_da2_vit_small",
    "working_area": 64 * 48, "steps": 2, "device": "cpu", "precision": "float32",
    "cpu_threads": 1,  # a shared CI box: OpenMP spin-waits make 2 threads ~100x slower than 1 under load
}

_used_domains: set[int] = set()


def fresh_domain() -> int:
    """A private ROS domain id for one test (never one used before in this process)."""
    while True:
        d = random.randint(120, 230)
        if d not in _used_domains and str(d) != os.environ.get("ROS_DOMAIN_ID"):
            _used_domains.add(d)
            return d


def dds_env(domain: int) -> dict[str, str]:
    """Environment for a child process: loopback-only Fast DDS profile, private domain, log dir."""
    env = dict(os.environ)
    env.update(FASTDDS_DEFAULT_PROFILES_FILE=str(FASTDDS_XML), FASTRTPS_DEFAULT_PROFILES_FILE=str(FASTDDS_XML),
               ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)  # it would override the XML transports
    env.setdefault("ROS_LOG_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "ppd_ros_test_logs"))
    return env


def check_dds_confined() -> None:
    """Refuse to run a DDS test unless the loopback profile is in force for this process."""
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        os.environ.setdefault(var, str(FASTDDS_XML))
    os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    os.environ.setdefault("ROS_LOG_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "ppd_ros_test_logs"))
    assert FASTDDS_XML.is_file(), f"loopback Fast DDS profile missing: {FASTDDS_XML}"


def ros_args(params: dict[str, Any]) -> list[str]:
    """-p name:=value for each parameter (lists as YAML flow sequences)."""
    out = []
    for k, v in params.items():
        if isinstance(v, bool):
            v = str(v).lower()
        elif isinstance(v, (list, tuple)):
            v = "[" + ", ".join(f"'{x}'" if isinstance(x, str) else str(x) for x in v) + "]"
        out += ["-p", f"{k}:={v}"]
    return out


class Spinner:
    """Spin an executor in a background thread for the duration of a ``with`` block."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down while spinning
                if self._stop.is_set():
                    return
                raise

    def __enter__(self) -> "Spinner":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_for(cond: Callable[[], bool], timeout: float, period: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(period)
    return cond()


def start_process(args: list[str], env: dict[str, str], executable: bool = False) -> subprocess.Popen:
    """``python ARGS`` (or ``ARGS`` itself with ``executable``), output captured, in the repo root."""
    cmd = list(args) if executable else [sys.executable, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(REPO))


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """SIGTERM (rclpy shuts down cleanly), SIGKILL after ``timeout``; return the output."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""

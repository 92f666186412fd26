"""The demo's ROS path: ``depth_node`` + one ``camera_sim`` process per camera, recorded to a bag.

DDS is confined to loopback (``config/fastdds_localhost.xml``) on a private domain id. This process
runs a recorder node that subscribes to every camera's outputs, writes them to a rosbag2 bag with
``ppd_ros.ros.bag.BagRecorder`` and keeps the depth it received for the measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..ros.demo_recorder import Recorder
from ..ros.stream_stats import parse_start_note
from .demo import NS, OUTPUT_TOPICS, CameraInput, Received

IDLE_S = 20.0  # a camera is done when no output came for this long after its last frame was sent


def _config_file() -> Path | None:
    p = Path(__file__).resolve().parents[2] / "config" / "fastdds_localhost.xml"
    return p if p.is_file() else None


def confine_dds() -> dict[str, str]:
    """Environment (also applied to this process) for loopback-only DDS on a private domain."""
    env = {"ROS_DOMAIN_ID": os.environ.get("PPD_DEMO_DOMAIN_ID", str(random.SystemRandom().randint(120, 220))),
           "ROS_LOG_DIR": os.environ.get("ROS_LOG_DIR") or tempfile.mkdtemp(prefix="ppd_demo_ros_log_")}
    xml = _config_file()
    if xml is not None:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(xml)
    os.environ.update(env)
    return dict(os.environ)


def write_camera_dirs(cams: list[CameraInput], root: Path) -> dict[str, list[str]]:
    """Each camera's frames as PNG files (+ camera.json with fx, fy, cx, cy when calibrated)."""
    files: dict[str, list[str]] = {}
    for cam in cams:
        d = root / cam.name
        d.mkdir(parents=True, exist_ok=True)
        names = []
        for i, rgb in enumerate(cam.frames):
            p = d / f"frame_{i:03d}.png"
            cv2.imwrite(str(p), rgb[..., ::-1])
            names.append(str(p))
        if cam.K is not None:
            K = cam.K
            (d / "camera.json").write_text(json.dumps({"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}))
        files[cam.name] = names
    return files


def _node_cmd(cams: list[CameraInput], args: argparse.Namespace) -> list[str]:
    names = ",".join(f"'{c.name}'" for c in cams)
    cmd = [sys.executable, "-m", "ppd_ros.ros.depth_node", "--ros-args", "-r", f"__ns:={NS}",
           "-p", f"cameras:=[{names}]", "-p", f"steps:={args.steps}", "-p", "lazy:=false",
           "-p", "device:=cpu", "-p", f"mode:={getattr(args, 'mode', 'image')}"]
    if args.official:
        cmd += ["-p", "model:=checkpoints", "-p", f"dit_checkpoint:={args.official[0]}",
                "-p", f"semantics_checkpoint:={args.official[1]}"]
    return cmd


def _camera_cmd(cam: CameraInput, files: list[str], rate: float) -> list[str]:
    # a single still frame is sent twice: the first sample after discovery can be lost on a late-joining reader
    count = len(files) * (2 if len(files) == 1 else 1)
    return [sys.executable, "-m", "ppd_ros.ros.camera_sim", *files, "--rate", str(rate), "--count", str(count),
            "--reliability", "reliable", "--camera-info", "calibrated" if cam.K is not None else "zeros",
            "--wait-subscribers", "180", "--linger", "1", "--ros-args", "-r", f"__ns:={NS}/{cam.name}"]


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_node_demo(cams: list[CameraInput], out: Path, args: argparse.Namespace
                  ) -> tuple[list[Received], int, str | None, list[str]]:
    """Start the node, stream each camera in turn, record; returns what came back."""
    env = confine_dds()
    files = write_camera_dirs(cams, out / "cameras")
    bag_path = out / "bag"
    if bag_path.exists():
        shutil.rmtree(bag_path)  # rosbag2 writes a new directory; this one is ours from a previous run
    rec = Recorder([c.name for c in cams], bag_path, NS, OUTPUT_TOPICS)
    log = open(out / "depth_node.log", "w")
    node = subprocess.Popen(_node_cmd(cams, args), env=env, stdout=log, stderr=subprocess.STDOUT)
    notes, frames_in, sent_stamps = [f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, DDS on loopback only"], 0, {}
    deadline = time.monotonic() + args.timeout
    try:
        for cam in cams:
            if node.poll() is not None:
                notes.append(f"depth_node exited early (code {node.returncode}); see {out / 'depth_node.log'}")
                break
            p = subprocess.run(_camera_cmd(cam, files[cam.name], args.rate), env=env, capture_output=True, text=True,
                               timeout=max(10.0, deadline - time.monotonic()))
            lines = [ln for ln in p.stdout.strip().splitlines() if ln.startswith("{")]
            stamps = json.loads(lines[-1])["stamps_ns"] if lines else []
            sent_stamps[cam.name] = stamps
            frames_in += len(stamps)
            ended = time.monotonic()  # let the node finish this camera's frames (drops never come back)
            while rec.outputs_of(cam.name) < len(stamps) and rec.idle_for(cam.name, ended) < IDLE_S \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
    except subprocess.TimeoutExpired:
        notes.append(f"gave up after --timeout {args.timeout} s")
    finally:
        time.sleep(0.5)
        _stop(node)
        log.close()
        rec.close()
    received = _collect(rec, cams, sent_stamps)
    return received, frames_in, str(bag_path), notes


def _collect(rec: Recorder, cams: list[CameraInput], sent: dict[str, list[int]]) -> list[Received]:
    out = []
    for cam in cams:
        for i, stamp in enumerate(sent.get(cam.name, [])):
            key = (cam.name, stamp)
            rel = rec.relative.get(key)
            metric = rec.depth.get(key)
            if rel is None and metric is None:
                continue
            base = rel if rel is not None else np.log1p(np.where(np.isfinite(metric), metric, np.nan))
            status = rec.status.get(key, {})
            start = parse_start_note(status.get("message", ""))
            warm, why, evals = start if start is not None else (None, "", 0)
            out.append(Received(cam.name, i, base.astype(np.float32), metric, rec.info.get(key),
                                dict(status.get("latency_ms", {})), warm, why, evals))
    return out

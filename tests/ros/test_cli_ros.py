"""``ppd-ros run`` (node + camera + recorder processes, as the launch file would start them) and
``ppd-ros replay`` (a bag's camera topics into the node), over loopback DDS in a private domain."""
from __future__ import annotations

import array

import numpy as np
import pytest

from .node_support import (FIXTURE_PARAMS, REAL_FRAMES, REPO, SHARED, check_dds_confined, dds_env, fresh_domain,
                           start_process, stop_process)

check_dds_confined()

from ppd_ros.cli.ros import node_command  # noqa: E402
from ppd_ros.ros.bag import BagRecorder, bag_summary, read_bag  # noqa: E402
from ppd_ros.ros.camera_sim import load_frame, make_camera_info  # noqa: E402

MOGE = SHARED / "fixtures" / "moge2" / "infer" / "weights.safetensors"
PARAMS = {**FIXTURE_PARAMS, "metric_checkpoint": str(MOGE), "metric_preset": "fixture_moge2_tiny",
          "metric_tokens": 64, "metric_refresh_every": 1000}


def pflags(params: dict) -> list[str]:
    return [a for k, v in params.items() for a in ("-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}")]


def test_node_command_is_what_launch_ros_would_exec() -> None:
    cfg = REPO / "config" / "ppd.yaml"
    cmd = node_command(str(cfg), "front", "depth_node", ["image:=/cam/image_raw"], ["steps:=2"],
                       ["--log-level", "warn"])
    i = cmd.index("--ros-args")
    assert cmd[1:3] == ["-m", "ppd_ros.ros.depth_node"]
    assert cmd[i + 1:] == ["-r", "__node:=depth_node", "-r", "__ns:=/front", "--params-file", str(cfg),
                           "-p", "steps:=2", "-r", "image:=/cam/image_raw", "--log-level", "warn"]


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer", "data/real")
def test_run_with_camera_and_recorder_writes_a_bag(tmp_path) -> None:
    bag = tmp_path / "run_bag"
    env = dds_env(fresh_domain())
    proc = start_process(["-m", "ppd_ros.cli.ros", "run", *pflags(PARAMS), "--namespace", "cam0",
                          "--camera", str(REAL_FRAMES[0]), "--camera-width", "96", "--camera-rate", "2",
                          "--camera-count", "4", "--record", str(bag), "--duration", "25"], env)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    summary = bag_summary(bag)
    assert summary["/cam0/depth"]["type"] == "sensor_msgs/msg/Image" and summary["/cam0/depth"]["count"] >= 1, summary
    assert summary["/cam0/points"]["count"] == summary["/cam0/depth"]["count"]
    stamps = {t: [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for tt, _, _, m in read_bag(bag) if tt == t]
              for t in ("/cam0/depth", "/cam0/depth/camera_info", "/cam0/points")}
    assert stamps["/cam0/depth"] == stamps["/cam0/depth/camera_info"] == stamps["/cam0/points"]


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer", "data/real")
def test_replay_feeds_a_bag_into_the_node(tmp_path) -> None:
    src = tmp_path / "camera_bag"
    rgb, (fx, fy, cx, cy) = load_frame(REAL_FRAMES[1], 96)
    from sensor_msgs.msg import Image
    t0 = 1_700_000_000 * 10**9  # an old recording: --restamp makes it current
    with BagRecorder(src) as rec:
        for i in range(3):
            img = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
            img.header.stamp.sec, img.header.stamp.nanosec = divmod(t0 + i * 500_000_000, 10**9)
            img.header.frame_id = "kinect_rgb_optical_frame"
            img.data = array.array("B", rgb.tobytes())
            info = make_camera_info(img.header, rgb.shape[1], rgb.shape[0], (fx, fy, cx, cy))
            rec.write("/kinect/camera_info", info, t0 + i * 500_000_000)
            rec.write("/kinect/image", img, t0 + i * 500_000_000 + 1)
    env = dds_env(fresh_domain())
    out_bag = tmp_path / "out_bag"
    node = start_process(["-m", "ppd_ros.cli.ros", "run", *pflags({**PARAMS, "max_frame_age": 30.0}),
                          "--record", str(out_bag)], env)
    try:
        replay = start_process(["-m", "ppd_ros.cli.ros", "replay", str(src), "--restamp"], env)
        rep_out = replay.communicate(timeout=120)[0]
        assert replay.returncode == 0 and "6 messages published" in rep_out, rep_out[-2000:]
        import time
        time.sleep(5.0)  # inference of the last frame
    finally:
        log = stop_process(node)
    depth = [m for t, _, _, m in read_bag(out_bag) if t == "/depth"]
    assert depth, log[-3000:]
    assert all(m.header.frame_id == "kinect_rgb_optical_frame" for m in depth)
    assert all(m.header.stamp.sec > 1_700_000_000 + 100 for m in depth)  # restamped to now
    d = np.frombuffer(depth[0].data, np.float32)
    assert np.isfinite(d).any()

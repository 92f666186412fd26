"""Cross-process, default parameters: input stamps that disagree with the node clock still get depth.

One node process; camera processes stamp their frames years in the past (a bag replayed without
/clock), then 1 h ahead, then 1 h behind the node clock (cameras on their own clock, clock jumps);
``ppd-ros replay`` plays a bag recorded long ago without sim time and without ``--restamp``. Every
frame that was not superseded gets depth, depth/camera_info and points with the input stamp
unchanged, nothing is dropped as stale, and each clock disagreement is logged in one line.
"""
from __future__ import annotations

import array
import json

import numpy as np

from .node_support import (REAL_FRAMES, Spinner, check_dds_confined, ros_args, start_process, stop_process,
                           wait_for)

check_dds_confined()

from ppd_ros.ros.bag import BagRecorder  # noqa: E402
from ppd_ros.ros.camera_sim import load_frame, make_camera_info  # noqa: E402
from ppd_ros.ros.conversions import image_msg_to_depth, msg_to_cloud  # noqa: E402

from .test_node_cross_process import METRIC_PARAMS, Collector, node_and_collector  # noqa: E402

S = 10**9
WIDTH = 96
PARAMS = {**METRIC_PARAMS, "log_throttle": 0.5}  # no max_frame_age / max_stream_lag: the defaults
OFFSETS_S = (-1e8, 3600.0, -3600.0)  # 3.2 years ago (bag), camera clock +1 h, -1 h


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * S + msg.header.stamp.nanosec


def wait_accounted(col: Collector, sent: int, timeout: float = 90) -> dict[str, int]:
    """Wait until /diagnostics counts ``sent`` frames in, none in flight, and every output arrived."""
    def done() -> bool:
        c = col.counters()
        return c.get("frames_in", -1) == sent and c.get("frames_in_flight", 1) == 0 and all(
            len(col.got[t]) == c.get("frames_out") for t in ("depth", "depth/camera_info", "points", "status"))
    ok = wait_for(done, timeout)
    counters = col.counters()
    assert ok, (counters, sent, {k: len(v) for k, v in col.got.items()})
    return counters


def check_every_unsuperseded_frame_published(col: Collector, counters: dict[str, int], stamps: list[int],
                                             frame_id: str) -> None:
    """published + superseded == sent, nothing stale; each output has its input's stamp and frame_id."""
    dropped = {k: v for k, v in counters.items() if k.startswith("dropped_") and v}
    assert set(dropped) <= {"dropped_superseded"}, counters
    assert counters["frames_out"] + dropped.get("dropped_superseded", 0) == len(stamps), counters
    assert counters["frames_out"] >= 1
    by_topic = {t: {stamp_of(m): m for m in col.got[t]} for t in ("depth", "depth/camera_info", "points")}
    for t, msgs in by_topic.items():
        assert len(msgs) == len(col.got[t]) == counters["frames_out"], t  # one output per frame
        assert set(msgs) <= set(stamps), t  # stamps copied unchanged
    for stamp, d in by_topic["depth"].items():
        info, pts = by_topic["depth/camera_info"][stamp], by_topic["points"][stamp]
        assert d.header.frame_id == frame_id and info.header == d.header and pts.header == d.header
        depth = image_msg_to_depth(d)
        assert np.isfinite(depth).any() and (depth[np.isfinite(depth)] > 0).all()
        assert (info.width, info.height) == (d.width, d.height) and info.k[0] > 0
        cloud = msg_to_cloud(pts)
        ok = np.isfinite(depth)
        np.testing.assert_allclose(cloud["z"][ok], depth[ok], rtol=1e-5)


def test_old_and_offset_camera_stamps_get_depth() -> None:
    argv = ["-m", "ppd_ros.ros.depth_node", "--ros-args", *ros_args(PARAMS)]
    with node_and_collector(argv) as (node, env, col, ex):
        with Spinner(ex):
            up = wait_for(lambda: col.node.count_subscribers("/image") > 0 or node.poll() is not None, 60)
            assert up and node.poll() is None, stop_process(node)
            stamps: list[int] = []
            for offset in OFFSETS_S:
                cam = start_process(["-m", "ppd_ros.ros.camera_sim", *map(str, REAL_FRAMES), "--count", "3",
                                     "--rate", "2", "--width", str(WIDTH), "--linger", "0.5",
                                     "--stamp-offset", repr(offset)], env)
                out = stop_process(cam, timeout=60) if cam.wait(60) is not None else ""
                stamps += json.loads(out.strip().splitlines()[-1])["stamps_ns"]
                counters = wait_accounted(col, len(stamps))
        ex.shutdown()
        log = stop_process(node)
    assert len(stamps) == 9
    check_every_unsuperseded_frame_published(col, counters, stamps, "camera_optical_frame")
    lines = [ln for ln in log.splitlines() if "the node clock (stamp" in ln]
    assert len(lines) == 3, log[-4000:]  # one line per clock, not one per frame
    assert "years behind" in lines[0] and "1.0 h ahead of" in lines[1] and "1.0 h behind" in lines[2], lines
    assert "Frames are still processed" in lines[0] and "stale" not in log


def test_replay_of_an_old_bag_without_sim_time(tmp_path) -> None:
    bag = tmp_path / "camera_bag_2017"
    rgb, pinhole = load_frame(REAL_FRAMES[1], WIDTH)
    from sensor_msgs.msg import Image
    t0, period = 1_500_000_000 * S, S  # recorded in July 2017, one frame a second
    stamps = [t0 + i * period for i in range(3)]
    with BagRecorder(bag) as rec:
        for t in stamps:
            img = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
            img.header.stamp.sec, img.header.stamp.nanosec = divmod(t, S)
            img.header.frame_id = "kinect_rgb_optical_frame"
            img.data = array.array("B", rgb.tobytes())
            rec.write("/kinect/camera_info", make_camera_info(img.header, rgb.shape[1], rgb.shape[0], pinhole), t)
            rec.write("/kinect/image", img, t + 1)
    argv = ["-m", "ppd_ros.ros.depth_node", "--ros-args", *ros_args(PARAMS)]
    with node_and_collector(argv) as (node, env, col, ex):
        with Spinner(ex):
            up = wait_for(lambda: col.node.count_subscribers("/image") > 0 or node.poll() is not None, 60)
            assert up and node.poll() is None, stop_process(node)
            replay = start_process(["-m", "ppd_ros.cli.ros", "replay", str(bag)], env)  # no --restamp, no /clock
            rep_out = replay.communicate(timeout=120)[0]
            assert replay.returncode == 0 and "6 messages published" in rep_out, rep_out[-2000:]
            counters = wait_accounted(col, len(stamps))
        ex.shutdown()
        log = stop_process(node)
    check_every_unsuperseded_frame_published(col, counters, stamps, "kinect_rgb_optical_frame")
    lines = [ln for ln in log.splitlines() if "the node clock (stamp 2017-07-14" in ln]
    assert len(lines) == 1, log[-4000:]

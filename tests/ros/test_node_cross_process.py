"""Cross-process: a camera process sends N real frames at a fixed rate to the node process over
loopback DDS (private domain, Fast DDS localhost profile); this test process receives depth,
depth/camera_info, points and status and checks stamps, encodings, sizes, and that every frame sent
was published or counted as dropped. Best-effort and reliable, Image and CompressedImage, a
mismatched camera_info and an uncalibrated camera."""
from __future__ import annotations

import contextlib
import json
import threading

import numpy as np
import pytest

from .node_support import (BUNDLED_KINECT, FIXTURE_PARAMS, REAL_FRAMES, SHARED, Spinner, check_dds_confined, dds_env,
                           fresh_domain, ros_args, start_process, stop_process, wait_for)

check_dds_confined()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ppd_ros.ros.conversions import image_msg_to_depth, msg_to_cloud  # noqa: E402
from ppd_ros.ros.messages import STATUS_MSG_TYPE, status_to_dict  # noqa: E402

MOGE = SHARED / "fixtures" / "moge2" / "infer" / "weights.safetensors"
# MoGe-2 (tiny fixture) fits the scale on the first frame and holds it: keeps the test fast on CPU
METRIC_PARAMS = {**FIXTURE_PARAMS, "metric_checkpoint": str(MOGE), "metric_preset": "fixture_moge2_tiny",
                 "metric_tokens": 64, "metric_refresh_every": 1000, "max_depth": 50.0}
N_FRAMES, RATE_HZ, WIDTH = 6, 3.0, 96


class Collector:
    """Subscribes to the node's outputs (sensor-data QoS matches reliable and best-effort) + /diagnostics."""

    TOPICS = {"depth": Image, "depth/camera_info": CameraInfo, "points": PointCloud2, "status": STATUS_MSG_TYPE}

    def __init__(self, ctx) -> None:
        self.node = Node("collector", context=ctx)
        self.got: dict[str, list] = {t: [] for t in self.TOPICS}
        self.diag: dict[str, str] = {}
        self._lock = threading.Lock()
        for t, ty in self.TOPICS.items():
            self.node.create_subscription(ty, t, lambda m, t=t: self._keep(t, m), 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, qos_profile_sensor_data)

    def _keep(self, topic: str, msg) -> None:
        with self._lock:
            self.got[topic].append(msg)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if "camera" in st.name:
                with self._lock:
                    self.diag = {kv.key: kv.value for kv in st.values}

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {k: int(v) for k, v in self.diag.items() if k.startswith(("frames_", "dropped_"))}


@contextlib.contextmanager
def node_and_collector(node_argv: list[str]):
    """Start the node process in a private domain and a Collector on it; yields (node, env, collector,
    executor); stops the node and the ROS context on the way out."""
    domain = fresh_domain()
    env = dds_env(domain)
    node = start_process(node_argv, env)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    try:
        col = Collector(ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(col.node)
        yield node, env, col, ex
    finally:
        if node.poll() is None:
            stop_process(node)
        rclpy.shutdown(context=ctx)


def run_camera(params: dict, cam_args: list[str], want_published: bool = True, bag_dir: str | None = None):
    """Start node + camera (+ ``ppd-ros record``) processes in a private domain; return (collector,
    sent summary, counters, node log)."""
    with node_and_collector(["-m", "ppd_ros.ros.depth_node", "--ros-args", *ros_args(params)]) as (node, env, col, ex):
        recorder = start_process(["-m", "ppd_ros.cli.ros", "record", "--out", bag_dir], env) if bag_dir else None
        with Spinner(ex):
            up = wait_for(lambda: col.node.count_subscribers("/image") + col.node.count_subscribers(
                "/image/compressed") > 0 and (recorder is None or col.node.count_subscribers("/points") > 1)
                or node.poll() is not None, 60)
            assert up and node.poll() is None, stop_process(node)
            cam = start_process(["-m", "ppd_ros.ros.camera_sim", *map(str, REAL_FRAMES), "--count", str(N_FRAMES),
                                 "--rate", str(RATE_HZ), "--width", str(WIDTH), *cam_args], env)
            out = stop_process(cam, timeout=120) if cam.wait(120) is not None else ""
            sent = json.loads(out.strip().splitlines()[-1])
            # the node reports frames_in / frames_out / dropped_* on /diagnostics once a second
            done = wait_for(lambda: col.counters().get("frames_in", -1) == sent["sent"] and
                            col.counters().get("frames_in_flight", 1) == 0 and
                            (not want_published or len(col.got["status"]) == col.counters().get("frames_out")), 90)
            counters = col.counters()
        ex.shutdown()
        if recorder is not None:
            recorder.send_signal(2)  # SIGINT: the recorder closes the bag (writes metadata.yaml)
            print(stop_process(recorder))
        log = stop_process(node)
        assert done, (counters, sent["sent"], {k: len(v) for k, v in col.got.items()}, log[-3000:])
        return col, sent, counters, log


def check_outputs(col: Collector, sent: dict, counters: dict) -> None:
    dropped = sum(v for k, v in counters.items() if k.startswith("dropped_"))
    assert counters["frames_in"] == sent["sent"] == N_FRAMES
    assert counters["frames_out"] + dropped == sent["sent"], counters
    assert counters["frames_out"] >= 1 and len(col.got["depth"]) == counters["frames_out"]
    size_of = {t: tuple(wh) for t, wh in zip(sent["stamps_ns"], sent["sizes"])}
    stamps = set(size_of)
    for topic in ("depth", "depth/camera_info", "points", "status"):
        msgs = col.got[topic]
        assert len(msgs) == counters["frames_out"], (topic, len(msgs))
        for m in msgs:
            assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in stamps, topic
            assert m.header.frame_id == "camera_optical_frame"
    for d, info, pts in zip(col.got["depth"], col.got["depth/camera_info"], col.got["points"]):
        w, h = size_of[d.header.stamp.sec * 10**9 + d.header.stamp.nanosec]
        assert info.header == d.header and pts.header == d.header
        assert d.encoding == "32FC1" and (d.width, d.height) == (w, h) and d.step == 4 * w
        depth = image_msg_to_depth(d)
        finite = depth[np.isfinite(depth)]
        assert finite.size and (finite > 0).all() and (finite <= 50.0).all()  # metres, beyond range = +Inf
        assert (info.width, info.height) == (w, h) and info.k[0] > 0 and info.p[0] > 0
        cloud = msg_to_cloud(pts)
        assert (pts.width, pts.height) == (w, h) and pts.point_step == 32 and not pts.is_dense
        assert cloud.dtype.names == ("x", "y", "z", "rgb")
        np.testing.assert_allclose(cloud["z"][np.isfinite(depth)], depth[np.isfinite(depth)], rtol=1e-5)
    st = status_to_dict(col.got["status"][-1])
    assert st["metric"] is True and st["model"] == "fixture_ppd_e2e_dit" and st["mode"] == "image"


def check_bag(bag, col: Collector) -> None:
    """The bag ``ppd-ros record`` wrote reads back with rosbags: right types, the outputs' stamps."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    want = {"/depth": "sensor_msgs/msg/Image", "/depth/camera_info": "sensor_msgs/msg/CameraInfo",
            "/points": "sensor_msgs/msg/PointCloud2", "/status": "ppd_ros/msg/DepthStatus"}
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == want or types == {**want, "/status": "diagnostic_msgs/msg/DiagnosticArray"}, types
        stamps: dict[str, list[int]] = {}
        for conn, _t, data in reader.messages():
            if conn.topic == "/status":
                continue  # ppd_ros/msg type: not in the stock typestore
            m = ts.deserialize_cdr(data, conn.msgtype)
            stamps.setdefault(conn.topic, []).append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
    got = sorted(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in col.got["depth"])
    for t in ("/depth", "/depth/camera_info", "/points"):
        assert sorted(stamps[t]) == got, t


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer", "data/real")
@pytest.mark.parametrize("reliability,compressed", [("best_effort", False), ("reliable", True)])
def test_real_frames_cross_process(reliability: str, compressed: bool, tmp_path) -> None:
    args = ["--reliability", reliability] + (["--compressed"] if compressed else [])
    params = {**METRIC_PARAMS, "input_transport": "compressed" if compressed else "raw"}
    bag = tmp_path / "bag"
    col, sent, counters, _ = run_camera(params, args, bag_dir=str(bag) if not compressed else None)
    check_outputs(col, sent, counters)
    if not compressed:
        check_bag(bag, col)
    # calibrated camera: depth/camera_info is the camera's K (it describes the published size)
    fx_by_width = {(96, 65): 994.978 * 96 / 741, (96, 72): 521.179233 * 96 / 640}  # camera.json K, scaled
    for info in col.got["depth/camera_info"]:
        assert info.k[0] == pytest.approx(fx_by_width[(info.width, info.height)], rel=1e-3)


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer", "data/real")
def test_mismatched_camera_info_is_reported_not_fatal() -> None:
    col, sent, counters, log = run_camera({**METRIC_PARAMS, "log_throttle": 3600.0}, ["--info-size", "320x240"])
    check_outputs(col, sent, counters)
    assert log.count("[camera_info CameraInfoMismatch") == 1, log[-3000:]  # throttled: once per period
    st = status_to_dict(col.got["status"][-1])
    assert st["level"] == 1 and "camera_info" in st["message"]
    # the frames went on with MoGe-2-predicted intrinsics of the published size
    info = col.got["depth/camera_info"][-1]
    assert info.k[0] > 0 and info.k[2] == pytest.approx((info.width - 1) / 2, abs=0.6)


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer", "data/real")
def test_uncalibrated_camera_gets_predicted_intrinsics() -> None:
    col, sent, counters, log = run_camera(METRIC_PARAMS, ["--camera-info", "none"])
    check_outputs(col, sent, counters)
    info = col.got["depth/camera_info"][-1]
    assert info.k[0] > 0 and info.k[2] == pytest.approx((info.width - 1) / 2, abs=0.6)  # MoGe-2's centred K


def test_bad_checkpoint_exits_with_one_line() -> None:
    domain = fresh_domain()
    proc = start_process(["-m", "ppd_ros.ros.depth_node", "--ros-args",
                          *ros_args({**FIXTURE_PARAMS, "dit_checkpoint": "/nonexistent/ppd.pth"})], dds_env(domain))
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out
    lines = [ln for ln in out.splitlines() if "configure failed" in ln]
    assert len(lines) == 1 and "checkpoint not found: /nonexistent/ppd.pth" in lines[0], out
    assert "Traceback" not in out


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_autostart_false_waits_for_lifecycle_services() -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    domain = fresh_domain()
    node = start_process(["-m", "ppd_ros.ros.depth_node", "--ros-args",
                          *ros_args({**FIXTURE_PARAMS, "autostart": False})], dds_env(domain))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    try:
        cli = Node("lifecycle_cli", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(cli)
        change = cli.create_client(ChangeState, "/depth_node/change_state")
        get = cli.create_client(GetState, "/depth_node/get_state")
        assert change.wait_for_service(timeout_sec=60) and get.wait_for_service(timeout_sec=10)

        def call(client, req):
            fut = client.call_async(req)
            ex.spin_until_future_complete(fut, timeout_sec=60)
            return fut.result()
        assert call(get, GetState.Request()).current_state.label == "unconfigured"
        assert cli.count_subscribers("/image") == 0  # nothing subscribed before activation
        for t in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert call(change, ChangeState.Request(transition=Transition(id=t))).success
        assert call(get, GetState.Request()).current_state.label == "active"
        assert wait_for(lambda: cli.count_subscribers("/image") == 1, 10)
        assert call(change, ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))).success
        assert wait_for(lambda: cli.count_subscribers("/image") == 0, 10)
        ex.shutdown()
        cli.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
        out = stop_process(node)
    assert "Traceback" not in out, out[-2000:]


def test_no_parameters_runs_the_embedded_models() -> None:
    """``depth_node`` alone, next to a camera: the embedded default models, metric depth out."""
    with node_and_collector(["-m", "ppd_ros.ros.depth_node"]) as (node, env, col, ex):
        cam = None
        try:
            with Spinner(ex):
                wait_for(lambda: col.node.count_subscribers("/image") > 0 or node.poll() is not None, 60)
                assert node.poll() is None, stop_process(node)[-3000:]
                cam = start_process(["-m", "ppd_ros.ros.camera_sim", str(BUNDLED_KINECT), "--count", "2",
                                     "--rate", "1", "--width", "128", "--linger", "0"], env)
                got = wait_for(lambda: len(col.got["depth"]) >= 1 and len(col.got["status"]) >= 1
                               or node.poll() is not None, 120)
            ex.shutdown()
            assert got and node.poll() is None, stop_process(node)[-3000:]
        finally:
            if cam is not None:
                stop_process(cam)
        depth, st = col.got["depth"][0], status_to_dict(col.got["status"][0])
        assert depth.encoding == "32FC1" and (depth.width, depth.height) == (128, 96)
        assert st["model"] == "embedded:default" and st["metric"] is True
        d = image_msg_to_depth(depth)
        assert np.isfinite(d).any() and (d[np.isfinite(d)] > 0).all()

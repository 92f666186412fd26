"""In-process tests of the depth node: parameters, lifecycle (bad checkpoints -> FAILURE with one
clear line; activate/deactivate/cleanup x20 without growth), image in -> depth out, laziness,
several cameras served by one model. The fixture model runs through the official-checkpoint path."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from .node_support import FIXTURE_PARAMS, WEIGHTS, Spinner, check_dds_confined, fresh_domain, wait_for

check_dds_confined()

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from ppd_ros.ros.camera_sim import CameraSim  # noqa: E402
from ppd_ros.ros.conversions import image_msg_to_depth  # noqa: E402
from ppd_ros.ros.depth_node import FAILURE, SUCCESS, DepthNode  # noqa: E402
from ppd_ros.ros.messages import STATUS_MSG_TYPE, status_to_dict  # noqa: E402
from ppd_ros.ros.params import PARAMS  # noqa: E402


@pytest.fixture
def ctx():
    import torch
    threads = torch.get_num_threads()  # the node's cpu_threads is process-wide: restore it
    c = rclpy.Context()
    rclpy.init(context=c, domain_id=fresh_domain())
    yield c
    rclpy.shutdown(context=c)
    torch.set_num_threads(threads)


def make_node(ctx, **overrides) -> DepthNode:
    params = {**FIXTURE_PARAMS, **overrides}
    return DepthNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


class Probe:
    """A test node that subscribes to a camera's outputs and keeps what arrives."""

    def __init__(self, ctx, ns: str = "", topics: tuple[str, ...] = ("depth/relative", "status")) -> None:
        self.node = Node("probe", context=ctx)
        self.got: dict[str, list] = {t: [] for t in topics}
        self._lock = threading.Lock()
        types = {"depth": Image, "depth/relative": Image, "depth/preview": Image,
                 "depth/camera_info": CameraInfo, "points": PointCloud2, "status": STATUS_MSG_TYPE}
        for t in topics:
            name = f"{ns}/{t}" if ns else t
            self.node.create_subscription(types[t], name, lambda m, t=t: self._keep(t, m), 10)

    def _keep(self, topic: str, msg) -> None:
        with self._lock:
            self.got[topic].append(msg)

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.got[topic])


def test_parameters_declared_with_descriptors_and_read_only_model(ctx):
    node = make_node(ctx)
    try:
        for p in PARAMS:
            d = node.describe_parameter(p.name)
            assert d.description, p.name
        assert node.describe_parameter("model").read_only and node.describe_parameter("precision").read_only
        assert node.describe_parameter("max_depth").floating_point_range[0].from_value == pytest.approx(0.1)
        assert node.describe_parameter("steps").integer_range[0].to_value == 64
        r = node.set_parameters([Parameter("model", value="embedded")])[0]
        assert not r.successful
    finally:
        node.destroy_node()


def test_out_of_range_parameter_is_refused_at_declaration(ctx):
    with pytest.raises(rclpy.exceptions.InvalidParameterValueException):
        make_node(ctx, steps=65)


def test_bad_choice_fails_configure_with_one_line(ctx, capfd):
    node = make_node(ctx, depth_encoding="8UC1")
    try:
        assert node.trigger_configure() == FAILURE
        err = capfd.readouterr().err
        assert "depth_encoding='8UC1'" in err and "32FC1" in err
    finally:
        node.destroy_node()


def test_missing_checkpoint_fails_configure_with_one_clear_line(ctx, capfd, tmp_path):
    missing = tmp_path / "nope.safetensors"
    node = make_node(ctx, dit_checkpoint=str(missing))
    try:
        assert node.trigger_configure() == FAILURE
        lines = [ln for ln in capfd.readouterr().err.splitlines() if "configure failed" in ln]
        assert len(lines) == 1 and "checkpoint not found" in lines[0] and str(missing) in lines[0], lines
        assert node._state_machine.current_state[1] == "unconfigured"
        assert node.models is None and node.worker is None
    finally:
        node.destroy_node()


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_corrupt_checkpoint_fails_configure_with_one_clear_line(ctx, capfd, tmp_path):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(64))
    node = make_node(ctx, semantics_checkpoint=str(bad))
    try:
        assert node.trigger_configure() == FAILURE
        lines = [ln for ln in capfd.readouterr().err.splitlines() if "configure failed" in ln]
        assert len(lines) == 1 and str(bad) in lines[0], lines
        assert "Traceback" not in capfd.readouterr().err
    finally:
        node.destroy_node()


def _run_frames(ctx, node: DepthNode, probe: Probe, frames: list[np.ndarray], want: int, ns: str = "",
                info: str = "calibrated") -> CameraSim:
    cam_node = Node("cam", namespace=ns or "/", context=ctx)
    sim = CameraSim(cam_node, frames, [(100.0, 100.0, f.shape[1] / 2 - 0.5, f.shape[0] / 2 - 0.5) for f in frames],
                    info=info)
    ex = SingleThreadedExecutor(context=ctx)
    for n in (node, probe.node, cam_node):
        ex.add_node(n)
    with Spinner(ex):
        assert wait_for(lambda: sim.image_pub.get_subscription_count() > 0, 10)
        for i in range(len(frames)):
            sim.send(i)
            # one frame at a time: the worker must be idle before the next, so nothing is superseded
            assert wait_for(lambda i=i: probe.count("status") > i, 30), node.worker.streams[0].stats.snapshot()
        wait_for(lambda: probe.count("status") >= want, 5)
    ex.shutdown()
    cam_node.destroy_node()
    return sim


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_image_in_relative_depth_out_with_input_header(ctx):
    node = make_node(ctx, metric=False)
    probe = Probe(ctx)
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)]
        sim = _run_frames(ctx, node, probe, frames, 2)
        rel, status = probe.got["depth/relative"], probe.got["status"]
        assert len(rel) == 2 and len(status) == 2
        for msg, frame, stamp in zip(rel, frames, sim.stamps_ns):
            assert msg.encoding == "32FC1" and (msg.height, msg.width) == frame.shape[:2]
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
            assert msg.header.frame_id == "camera_optical_frame"
            assert np.isfinite(image_msg_to_depth(msg)).all()
        st = status_to_dict(status[-1])
        assert st["stamp_ns"] == sim.stamps_ns[-1] and st["metric"] is False and st["mode"] == "image"
        assert st["frames_in"] == 2 and st["frames_out"] == 2 and "pipeline" in st["latency_ms"]
        snap = node.worker.streams[0].stats.snapshot()
        assert snap.received == 2 and snap.published == 2 and snap.dropped_total == 0
    finally:
        node.trigger_deactivate()
        node.trigger_cleanup()
        node.destroy_node()
        probe.node.destroy_node()


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "fixtures/moge2/infer")
def test_metric_options_16uc1_xyz_model_resolution_and_preview(ctx):
    moge = WEIGHTS.parents[2] / "moge2" / "infer" / "weights.safetensors"
    node = make_node(ctx, metric_checkpoint=str(moge), metric_preset="fixture_moge2_tiny", metric_tokens=64,
                     depth_encoding="16UC1", points_format="xyz", output_resolution="model", max_depth=50.0)
    probe = Probe(ctx, topics=("depth", "depth/camera_info", "points", "depth/preview", "status"))
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        assert node.models.metric is not None
        frame = np.random.default_rng(3).integers(0, 255, (60, 80, 3), dtype=np.uint8)
        sim = _run_frames(ctx, node, probe, [frame], 1)
        (depth,), (info,), (pts,), (prev,) = (probe.got[t] for t in ("depth", "depth/camera_info", "points",
                                                                          "depth/preview"))
        work = (48, 64)  # the 64x48 working area of the fixture settings, aspect kept
        assert depth.encoding == "16UC1" and (depth.height, depth.width) == work
        mm = np.frombuffer(depth.data, np.uint16)
        assert mm.max() <= 50000 and (mm > 0).any()  # millimetres, 0 = invalid or beyond range
        assert (info.height, info.width) == work and info.k[0] > 0  # predicted K of the published size
        assert (pts.height, pts.width, pts.point_step) == (*work, 16)
        assert [f.name for f in pts.fields] == ["x", "y", "z"]
        assert prev.encoding == "bgr8" and (prev.height, prev.width) == work
        for m in (depth, info, pts, prev):
            assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == sim.stamps_ns[0]
        st = status_to_dict(probe.got["status"][0])
        assert st["metric"] and st["metric_scale_age_s"] == 0.0 and "metric" in st["latency_ms"]
    finally:
        node.trigger_deactivate()
        node.destroy_node()
        probe.node.destroy_node()


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_no_inference_without_subscribers(ctx):
    node = make_node(ctx, metric=False)
    probe = Probe(ctx, topics=("status",))  # status alone does not make the node infer
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        cam_node = Node("cam", context=ctx)
        sim = CameraSim(cam_node, [np.zeros((24, 32, 3), np.uint8)], [(30.0, 30.0, 15.5, 11.5)])
        ex = SingleThreadedExecutor(context=ctx)
        for n in (node, probe.node, cam_node):
            ex.add_node(n)
        stats = node.worker.streams[0].stats
        with Spinner(ex):
            assert wait_for(lambda: sim.image_pub.get_subscription_count() > 0, 10)
            for i in range(3):
                sim.send(i)
                assert wait_for(lambda i=i: stats.snapshot().dropped.get("no_subscribers", 0) > i, 10)
        ex.shutdown()
        snap = stats.snapshot()
        assert snap.published == 0 and snap.received == 3 and snap.dropped == {"no_subscribers": 3}
        assert probe.count("status") == 0
        cam_node.destroy_node()
    finally:
        node.destroy_node()
        probe.node.destroy_node()


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_two_cameras_one_model(ctx):
    node = make_node(ctx, metric=False, cameras=["left", "right"])
    probes = {ns: Probe(ctx, ns) for ns in ("left", "right")}
    try:
        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        assert len(node.outputs) == 2 and node.worker.models is node.models  # one model for both
        names = dict(node.get_subscriber_names_and_types_by_node("depth_node", "/"))
        assert "/left/image" in names and "/right/camera_info" in names
        for i, ns in enumerate(("left", "right")):
            frame = np.full((24 + 8 * i, 32, 3), 100, np.uint8)
            _run_frames(ctx, node, probes[ns], [frame], 1, ns=ns)
            (msg,) = probes[ns].got["depth/relative"]
            assert (msg.height, msg.width) == frame.shape[:2]
            assert status_to_dict(probes[ns].got["status"][0])["camera"] == ns
        assert [s.stats.snapshot().published for s in node.worker.streams] == [1, 1]
    finally:
        node.trigger_deactivate()
        node.destroy_node()
        for p in probes.values():
            p.node.destroy_node()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_lifecycle_cycles_do_not_grow(ctx):
    node = make_node(ctx, metric=False)
    try:
        def entities() -> tuple[int, int, int]:
            pubs = node.get_publisher_names_and_types_by_node("depth_node", "/")
            subs = node.get_subscriber_names_and_types_by_node("depth_node", "/")
            return len(pubs), len(subs), threading.active_count()

        baseline = entities()
        rss = []
        for i in range(20):
            assert node.trigger_configure() == SUCCESS
            assert node.trigger_activate() == SUCCESS
            assert node.inputs and node.worker._thread is not None
            assert node.trigger_deactivate() == SUCCESS
            assert node.trigger_cleanup() == SUCCESS
            assert node.models is None and node.worker is None and not node.outputs
            gc.collect()
            time.sleep(0.05)  # graph updates are asynchronous
            rss.append(_rss_mib())
        assert wait_for(lambda: entities() == baseline, 5), (entities(), baseline)
        # after warm-up (allocator pools, type support loading) memory is flat
        assert rss[-1] - rss[4] < 40, rss
    finally:
        node.destroy_node()

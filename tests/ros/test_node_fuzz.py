"""Fuzz: >= 1000 bad messages of every class in the issue (random encodings, 0x0, 1x1, 8000x8000
headers with short data, wrong step, NaN/inf 32F images, truncated / garbage JPEG, camera_info with
zeros / NaN / the wrong size, stamps jumping backwards) -> the node stays up, logs each class once per
throttle period, counts every frame, then processes good frames again."""
from __future__ import annotations

import array
import re
import time

import cv2
import numpy as np
import pytest

from .node_support import FIXTURE_PARAMS, Spinner, check_dds_confined, fresh_domain, wait_for

check_dds_confined()

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from ppd_ros.ros.camera_sim import make_camera_info  # noqa: E402
from ppd_ros.ros.depth_node import SUCCESS, DepthNode  # noqa: E402

PER_CLASS = 100
rng = np.random.default_rng(1234)


def image(h: int, w: int, enc: str, step: int, nbytes: int, stamp_ns: int) -> Image:
    m = Image(height=h, width=w, encoding=enc, step=step, is_bigendian=0)
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    m.header.frame_id = "cam_optical_frame"
    m.data = array.array("B", rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes())
    return m


def float_image(h: int, w: int, stamp_ns: int) -> Image:
    d = rng.random((h, w), dtype=np.float32)
    d[0, 0], d[0, 1], d[1, 0] = np.nan, np.inf, -np.inf
    m = image(h, w, "32FC1", 4 * w, 0, stamp_ns)
    m.data = array.array("B", d.tobytes())
    return m


def jpeg(stamp_ns: int, cut: int | None, garbage: bool = False) -> CompressedImage:
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    data = b"\x00\x01" * 40 if garbage else buf.tobytes()[:cut]
    m = CompressedImage(format="rgb8; jpeg compressed bgr8")
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    m.header.frame_id = "cam_optical_frame"
    m.data = array.array("B", data)
    return m


def bad_info(kind: str, stamp_ns: int) -> CameraInfo:
    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    m.header.frame_id = "cam_optical_frame"
    info = make_camera_info(m.header, 8, 8, (10.0, 10.0, 3.5, 3.5), "zeros" if kind == "zeros" else "calibrated")
    if kind == "wrong_size":
        info.width, info.height = 640, 480
    elif kind == "nan":
        info.k[0] = float("nan")
    return info


class Fuzzer:
    def __init__(self, ctx) -> None:
        self.node = Node("fuzzer", context=ctx)
        qos = qos_profile_sensor_data
        self.raw = self.node.create_publisher(Image, "/raw/image", qos)
        self.raw_info = self.node.create_publisher(CameraInfo, "/raw/camera_info", qos)
        self.jpg = self.node.create_publisher(CompressedImage, "/jpg/image/compressed", qos)
        self.t = time.time_ns()

    def stamp(self, step_ns: int = 1_000_000) -> int:
        self.t += step_ns
        return self.t

    def paced(self, publish, n: int) -> None:
        for i in range(n):
            publish(i)
            if i % 2 == 1:
                time.sleep(0.004)  # let the subscriber keep up (sensor-data QoS keeps 5)

    def run(self) -> int:
        sent = 0
        classes = [
            (self.raw, lambda i: image(4, 4, "".join(rng.choice(list("abcxyz0123_"), 6)), 12, 48, self.stamp())),
            (self.raw, lambda i: image(0, 0, "rgb8", 0, 0, self.stamp())),
            (self.raw, lambda i: image(1, 1, "rgb8", 3, 3, self.stamp())),
            (self.raw, lambda i: image(8000, 8000, "rgb8", 24000, 64, self.stamp())),
            (self.raw, lambda i: image(6, 6, "rgb8", 5, 30, self.stamp())),  # step < width * 3
            (self.raw, lambda i: image(6, 6, "bgr8", 20, 20, self.stamp())),  # step * height > data
            (self.raw, lambda i: float_image(6, 6, self.stamp())),
            (self.jpg, lambda i: jpeg(self.stamp(), cut=int(rng.integers(1, 120)))),
            (self.jpg, lambda i: jpeg(self.stamp(), cut=None, garbage=True)),
        ]
        for pub, make in classes:
            self.paced(lambda i: pub.publish(make(i)), PER_CLASS)
            sent += PER_CLASS
        for kind in ("zeros", "wrong_size", "nan"):  # a valid 8x8 image with a bad camera_info
            def pair(i: int, kind: str = kind) -> None:
                s = self.stamp()
                self.raw_info.publish(bad_info(kind, s))
                self.raw.publish(image(8, 8, "rgb8", 24, 192, s))
            self.paced(pair, PER_CLASS // 2)
            sent += PER_CLASS
        base = self.t
        for i in range(PER_CLASS // 2):  # stamps jumping backwards (small steps and > 1 s jumps)
            s = base - (i % 7) * 3_000_000 - (2_000_000_000 if i % 5 == 0 else 0)
            self.raw_info.publish(bad_info("calibrated", s))
            self.raw.publish(image(8, 8, "rgb8", 24, 192, s))
            sent += 2
            time.sleep(0.002)
        return sent


@pytest.mark.needs_shared("fixtures/ppd/e2e_small")
def test_fuzz_node_survives_counts_and_recovers(capfd):
    import torch
    threads = torch.get_num_threads()
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=fresh_domain())
    params = {**FIXTURE_PARAMS, "metric": False, "log_throttle": 3600.0, "sync_queue_size": 5}
    over = [Parameter(k, value=v) for k, v in params.items()]
    raw = DepthNode("depth_raw", namespace="/raw", context=ctx, parameter_overrides=over)
    jpg = DepthNode("depth_jpg", namespace="/jpg", context=ctx,
                    parameter_overrides=over + [Parameter("input_transport", value="compressed")])
    fuzz = Fuzzer(ctx)
    sink = Node("sink", context=ctx)  # someone must want the outputs, or nothing is inferred
    got = {"raw": 0, "jpg": 0}
    for ns in got:
        sink.create_subscription(Image, f"/{ns}/depth/relative", lambda m, ns=ns: got.__setitem__(ns, got[ns] + 1), 10)
    ex = SingleThreadedExecutor(context=ctx)
    for n in (raw, jpg, fuzz.node, sink):
        ex.add_node(n)
    try:
        for n in (raw, jpg):
            assert n.trigger_configure() == SUCCESS and n.trigger_activate() == SUCCESS
        with Spinner(ex):
            assert wait_for(lambda: fuzz.raw.get_subscription_count() and fuzz.jpg.get_subscription_count()
                            and fuzz.raw_info.get_subscription_count(), 10)
            sent = fuzz.run()
            assert sent >= 1000
            time.sleep(1.0)
            for n in (raw, jpg):
                # only images waiting in the bounded camera_info pairer may still be open
                assert wait_for(lambda n=n: n.worker.streams[0].stats.snapshot().in_flight <= 5, 30)
                assert n._state_machine.current_state[1] == "active"
            before = {ns: n.worker.streams[0].stats.snapshot() for ns, n in (("raw", raw), ("jpg", jpg))}
            # good frames again, stamped after everything above
            good = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            for i in range(3):
                s = fuzz.stamp(100_000_000)
                info = make_camera_info(image(1, 1, "rgb8", 3, 3, s).header, 32, 24, (30.0, 30.0, 15.5, 11.5))
                msg = image(24, 32, "rgb8", 96, 0, s)
                msg.data = array.array("B", good.tobytes())
                fuzz.raw_info.publish(info)
                fuzz.raw.publish(msg)
                ok, buf = cv2.imencode(".jpg", good)
                j = jpeg(s, None)
                j.data = array.array("B", buf.tobytes())
                fuzz.jpg.publish(j)

                def both_published(i: int = i) -> bool:
                    return all(n.worker.streams[0].stats.snapshot().published > before[ns].published + i
                               for ns, n in (("raw", raw), ("jpg", jpg)))
                assert wait_for(both_published, 30)
        time.sleep(0.5)
        after = {ns: n.worker.streams[0].stats.snapshot() for ns, n in (("raw", raw), ("jpg", jpg))}
        err = capfd.readouterr().err
    finally:
        ex.shutdown()
        for n in (raw, jpg):
            if n._state_machine.current_state[1] == "active":
                n.trigger_deactivate()
        for n in (raw, jpg, fuzz.node, sink):
            n.destroy_node()
        rclpy.shutdown(context=ctx)
        torch.set_num_threads(threads)

    # every frame the nodes received is published or counted as dropped, by reason
    for snap in after.values():
        assert snap.received >= 100 and snap.in_flight == 0, snap
        assert snap.published + snap.dropped_total == snap.received, snap
    # best-effort inputs may lose a few messages on the way; most must arrive and be counted
    assert before["raw"].received + before["jpg"].received >= 0.8 * sent, (sent, before)
    assert before["raw"].dropped["bad_input"] >= 300 and before["jpg"].dropped["bad_input"] >= 100, before
    assert before["raw"].warnings.get("camera_info_mismatch", 0) >= 1, before
    assert before["raw"].dropped.get("unpaired", 0) >= 1, before
    # each class of bad input is logged once per throttle period (here: once), never a traceback
    keys = re.findall(r"\[(raw|jpg)\.depth_\w+\]: \[(.*?)\] camera '", err)
    assert len(keys) == len(set(keys)), sorted(keys)
    text = " ".join(k for _, k in keys)
    for cls in ("UnsupportedEncoding", "is #x#", "needs # bytes", "step # is smaller", "JPEG",
                "camera_info CameraInfoMismatch", "unpaired"):
        assert cls in text, (cls, sorted(set(keys)))
    assert "Traceback" not in err
    assert got["raw"] >= 3 and got["jpg"] >= 3

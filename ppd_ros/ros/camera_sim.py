"""A camera publisher for tests and the demo: image files or numpy frames -> Image / CompressedImage
+ CameraInfo at a fixed rate, best-effort or reliable QoS.

Run as a process (what tests, ``ppd-ros run --camera`` and the demo do)::

    python -m ppd_ros.ros.camera_sim IMAGE... --rate 10 --count 20 [--compressed] \
        [--reliability best_effort] [--camera-info calibrated|zeros|none] [--info-size WxH] \
        [--width 160] [--stamp-offset SECONDS] --ros-args -r __ns:=/cam0

Topics (relative, so ``__ns`` / remaps apply): ``image`` (rgb8 by default), ``image/compressed``
(JPEG, with --compressed), ``camera_info``. The image and its camera_info share one stamp (node
clock at send time, plus ``--stamp-offset`` seconds: a camera on its own clock, or a bag recorded
long ago replayed without /clock). Intrinsics come from a ``camera.json`` beside the image (fx, fy, cx, cy) scaled
to the sent size, else a 60 degree horizontal field of view. The last stdout line is a JSON summary
``{"sent": N, "stamps_ns": [...], "sizes": [[W, H], ...]}`` (one size per sent frame).
"""
from __future__ import annotations

import argparse
import array
import json
import sys
import time
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

InfoMode = Literal["calibrated", "zeros", "none"]


def load_frame(path: str | Path, width: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """RGB uint8 frame (resized to ``width`` keeping aspect) and its pinhole (fx, fy, cx, cy) in pixels."""
    p = Path(path)
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {p}")
    h0, w0 = bgr.shape[:2]
    fx, fy, cx, cy = _intrinsics(p, w0, h0)
    if width and width != w0:
        s = width / w0
        h = max(1, round(h0 * s))
        bgr = cv2.resize(bgr, (width, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        sx, sy = width / w0, h / h0  # pixel-centre convention: c' = (c + 0.5) s - 0.5
        fx, fy, cx, cy = fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
    return np.ascontiguousarray(bgr[..., ::-1]), (fx, fy, cx, cy)


def _intrinsics(p: Path, w: int, h: int) -> tuple[float, float, float, float]:
    cam = p.parent / "camera.json"
    if cam.is_file():
        d = json.loads(cam.read_text())
        d = d.get("rgb_camera", d)
        if all(k in d for k in ("fx", "fy", "cx", "cy")):
            return float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"])
    f = w / (2 * np.tan(np.radians(30.0)))
    return f, f, (w - 1) / 2, (h - 1) / 2


def make_camera_info(header, width: int, height: int, pinhole: tuple[float, float, float, float],
                     mode: InfoMode = "calibrated") -> CameraInfo:
    """A distortion-free CameraInfo; ``zeros`` gives an all-zero K/P (an uncalibrated camera)."""
    fx, fy, cx, cy = pinhole if mode == "calibrated" else (0.0, 0.0, 0.0, 0.0)
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0 if mode == "calibrated" else 0.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0 if mode == "calibrated" else 0.0, 0.0]
    return info


class CameraSim:
    """Publishes frames round-robin on one node; ``send(i)`` sends frame ``i % len(frames)``."""

    def __init__(self, node: Node, frames: Sequence[np.ndarray], pinholes: Sequence[tuple[float, ...]],
                 reliability: str = "reliable", compressed: bool = False, info: InfoMode = "calibrated",
                 frame_id: str = "camera_optical_frame", info_size: tuple[int, int] | None = None,
                 stamp_offset_ns: int = 0) -> None:
        rel = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=rel)
        self.node, self.frames, self.pinholes = node, list(frames), list(pinholes)
        self.compressed, self.info, self.frame_id, self.info_size = compressed, info, frame_id, info_size
        self.stamp_offset_ns = stamp_offset_ns
        self.image_pub = node.create_publisher(CompressedImage if compressed else Image,
                                               "image/compressed" if compressed else "image", qos)
        self.info_pub = node.create_publisher(CameraInfo, "camera_info", qos) if info != "none" else None
        self._encoded = [self._encode(f) for f in self.frames]
        self.stamps_ns: list[int] = []

    def _encode(self, rgb: np.ndarray) -> array.array:
        if self.compressed:
            ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            return array.array("B", buf.tobytes())
        return array.array("B", rgb.tobytes())

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Block until the image topic has a subscriber (and camera_info, when published)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.image_pub.get_subscription_count() > 0 and (
                    self.info_pub is None or self.info_pub.get_subscription_count() > 0):
                return True
            time.sleep(0.05)
        return False

    def send(self, i: int) -> int:
        """Publish frame ``i`` (and its camera_info) stamped now (+ the stamp offset); return the stamp in ns."""
        k = i % len(self.frames)
        rgb = self.frames[k]
        h, w = rgb.shape[:2]
        stamp = Time(nanoseconds=self.node.get_clock().now().nanoseconds + self.stamp_offset_ns)
        if self.compressed:
            msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
        else:
            msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        msg.header.stamp, msg.header.frame_id = stamp.to_msg(), self.frame_id
        msg.data = self._encoded[k]
        if self.info_pub is not None:
            iw, ih = self.info_size or (w, h)
            self.info_pub.publish(make_camera_info(msg.header, iw, ih, self.pinholes[k], self.info))
        self.image_pub.publish(msg)
        self.stamps_ns.append(stamp.nanoseconds)
        return stamp.nanoseconds

    def run(self, count: int, rate_hz: float) -> None:
        period = 1.0 / rate_hz
        t_next = time.monotonic()
        for i in range(count):
            self.send(i)
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="camera_sim", description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+", help="image files, sent round-robin")
    ap.add_argument("--rate", type=float, default=10.0, help="frames per second")
    ap.add_argument("--count", type=int, default=0, help="frames to send (0 = forever)")
    ap.add_argument("--width", type=int, default=0, help="resize to this width (keeps aspect; 0 = as is)")
    ap.add_argument("--reliability", choices=("reliable", "best_effort"), default="best_effort")
    ap.add_argument("--compressed", action="store_true", help="publish JPEG CompressedImage instead of Image")
    ap.add_argument("--camera-info", choices=("calibrated", "zeros", "none"), default="calibrated")
    ap.add_argument("--info-size", default="", help="WxH written into camera_info (mismatch tests)")
    ap.add_argument("--frame-id", default="camera_optical_frame")
    ap.add_argument("--stamp-offset", type=float, default=0.0,
                    help="seconds added to the node clock in the stamps (e.g. -1e8: a bag from years ago)")
    ap.add_argument("--wait-subscribers", type=float, default=20.0, help="seconds to wait for a subscriber")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait after the first subscriber matched, before the first frame")
    ap.add_argument("--linger", type=float, default=1.0, help="seconds to stay up after the last frame")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    rclpy.init(args=argv)
    args = parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    loaded = [load_frame(p, args.width) for p in args.images]
    info_size = tuple(int(v) for v in args.info_size.lower().split("x")) if args.info_size else None
    node = Node("camera_sim")
    sim = CameraSim(node, [f for f, _ in loaded], [k for _, k in loaded], args.reliability, args.compressed,
                    args.camera_info, args.frame_id, info_size, round(args.stamp_offset * 1e9))
    try:
        if not sim.wait_for_subscribers(args.wait_subscribers):
            node.get_logger().warning("no subscriber matched; sending anyway")
        # The writer seeing the reader does not mean the reader has matched the writer yet; samples
        # sent in between are lost even when reliable (volatile durability). Give discovery a moment.
        time.sleep(args.settle)
        sim.run(args.count if args.count > 0 else 2**62, args.rate)
        time.sleep(args.linger)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. context shut down by SIGTERM mid-publish
        print(f"camera_sim: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        sizes = [[sim.frames[i % len(sim.frames)].shape[1], sim.frames[i % len(sim.frames)].shape[0]]
                 for i in range(len(sim.stamps_ns))]
        print(json.dumps({"sent": len(sim.stamps_ns), "stamps_ns": sim.stamps_ns, "sizes": sizes}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

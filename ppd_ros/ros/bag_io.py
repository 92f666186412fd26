"""Recording the node's outputs to a rosbag2 bag and replaying a bag's camera topics into the node
(the ``ppd-ros record`` / ``ppd-ros replay`` commands; rosbag2 itself is not installable here).

Recording subscribes with ``raw=True`` and stores the CDR bytes as they came over the wire, stamped
with the receive time (what ``ros2 bag record`` does). Replay publishes ``image``,
``image/compressed`` and ``camera_info`` messages of a bag at their recorded pace, with their recorded
stamps (the depth node's default stale rule compares stamps with each other, not with its clock, so
a bag recorded long ago needs neither /clock nor ``--restamp``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from .bag import BagRecorder, msgtype_of, read_bag
from .messages import STATUS_MSG_TYPE
from .params import topic

RECORD_TOPICS: dict[str, type] = {"depth": Image, "depth/camera_info": CameraInfo, "points": PointCloud2,
                                  "status": STATUS_MSG_TYPE}
REPLAY_SUFFIXES = ("image", "image/compressed", "camera_info")


def _qos(reliability: str, depth: int) -> QoSProfile:
    rel = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel)


def record(out: str | Path, namespace: str = "", topics: Iterable[str] = tuple(RECORD_TOPICS),
           storage: str = "mcap", reliability: str = "reliable", duration_s: float = 0.0,
           count: int = 0, args: list[str] | None = None) -> dict[str, int]:
    """Record ``topics`` (relative to ``namespace``) into a new bag at ``out``; stop after
    ``duration_s`` seconds, ``count`` depth messages, SIGINT or SIGTERM. Returns messages per topic."""
    rclpy.init(args=args)
    node = Node("ppd_recorder")
    bag = BagRecorder(out, storage)  # type: ignore[arg-type]
    ns = namespace.strip("/")
    depth_topic = "/" + topic(ns, "depth")

    def keep(name: str, msgtype: str):
        def cb(data: bytes) -> None:
            bag.write_raw(name, msgtype, data, node.get_clock().now().nanoseconds)
        return cb

    for rel in topics:
        cls = RECORD_TOPICS.get(rel, Image)
        name = "/" + topic(ns, rel)
        node.create_subscription(cls, name, keep(name, msgtype_of(cls())), _qos(reliability, 50), raw=True)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t_end = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    try:
        while rclpy.ok() and time.monotonic() < t_end and not (count and bag.counts.get(depth_topic, 0) >= count):
            ex.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        bag.close()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return dict(bag.counts)


def _restamp(msg: Any, stamp_map: dict[int, Any], node: Node) -> None:
    """Give the message a fresh stamp; an image and its camera_info keep sharing one."""
    old = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    if old not in stamp_map:
        stamp_map.clear() if len(stamp_map) > 64 else None
        stamp_map[old] = node.get_clock().now().to_msg()
    msg.header.stamp = stamp_map[old]


def replay(bag_path: str | Path, namespace: str = "", rate: float = 1.0, restamp: bool = False,
           loop: bool = False, reliability: str = "reliable", wait_s: float = 10.0,
           args: list[str] | None = None) -> int:
    """Publish the bag's image / image/compressed / camera_info messages under ``namespace``."""
    rclpy.init(args=args)
    node = Node("ppd_replay")
    ns = namespace.strip("/")
    pubs: dict[str, Any] = {}
    sent = 0
    try:
        while True:
            t0_bag = t0_wall = None
            stamp_map: dict[int, Any] = {}
            for bag_topic, _msgtype, t_ns, msg in read_bag(bag_path):
                suffix = next((s for s in REPLAY_SUFFIXES if bag_topic.rstrip("/").endswith("/" + s)), None)
                if suffix is None or not hasattr(msg, "header"):
                    continue
                if suffix not in pubs:
                    pubs[suffix] = node.create_publisher(type(msg), topic(ns, suffix), _qos(reliability, 10))
                    deadline = time.monotonic() + wait_s  # give the node time to match
                    while pubs[suffix].get_subscription_count() == 0 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    # the writer seeing the reader is not the reader matching the writer: samples sent
                    # in between are lost even when reliable (volatile durability)
                    time.sleep(0.5 if pubs[suffix].get_subscription_count() else 0.0)
                if t0_bag is None:
                    t0_bag, t0_wall = t_ns, time.monotonic()
                time.sleep(max(0.0, t0_wall + (t_ns - t0_bag) / 1e9 / rate - time.monotonic()))
                if restamp:
                    _restamp(msg, stamp_map, node)
                pubs[suffix].publish(msg)
                sent += 1
            if not loop or not rclpy.ok():
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        time.sleep(0.5)  # let the last messages leave
        node.destroy_node()
        rclpy.try_shutdown()
    return sent

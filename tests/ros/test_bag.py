"""BagRecorder / read_bag: MCAP and sqlite3 rosbag2 bags with correct types, hashes and stamps."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Header

from ppd_ros.intrinsics import CameraIntrinsics
from ppd_ros.pointcloud import pack_xyzrgb
from ppd_ros.ros import messages
from ppd_ros.ros.bag import BagError, BagRecorder, bag_summary, make_typestore, read_bag
from ppd_ros.ros.conversions import (cloud_to_msg, depth_to_image_msg, image_msg_to_depth, intrinsics_to_camera_info,
                                     msg_to_cloud)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000


def header(i: int) -> Header:
    h = Header(frame_id="cam_optical_frame")
    ns = T0 + i * 33_333_333
    h.stamp.sec, h.stamp.nanosec = ns // 10**9, ns % 10**9
    return h


def frames(n: int = 3) -> list[tuple[str, object, int]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        depth = rng.random((4, 6), dtype=np.float32) * 5
        depth[0, 0] = np.nan
        pts = rng.random((4, 6, 3), dtype=np.float32)
        rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
        stamp = T0 + i * 33_333_333
        out += [("/cam/depth", depth_to_image_msg(depth, header(i)), stamp),
                ("/cam/depth/camera_info", intrinsics_to_camera_info(
                    CameraIntrinsics.from_pinhole(6, 4, 5.0, 5.0, 2.5, 1.5), header(i)), stamp),
                ("/cam/points", cloud_to_msg(pack_xyzrgb(pts, rgb), header(i)), stamp),
                ("/cam/status", messages.make_status(header=header(i), model="ppd", mode="image", stream_index=i,
                                                     dropped={"stale": i}), stamp + 1)]
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_and_read_back(tmp_path: Path, storage: str) -> None:
    path = tmp_path / f"bag_{storage}"
    written = frames()
    with BagRecorder(path, storage) as rec:  # type: ignore[arg-type]
        for topic, msg, stamp in written:
            rec.write(topic, msg, stamp)
    assert rec.counts == {"/cam/depth": 3, "/cam/depth/camera_info": 3, "/cam/points": 3, "/cam/status": 3}
    meta = (path / "metadata.yaml").read_text()
    assert f"storage_identifier: {storage}" in meta and "version: 9" in meta

    status_type = "ppd_ros/msg/DepthStatus" if messages.HAVE_DEPTH_STATUS else "diagnostic_msgs/msg/DiagnosticArray"
    expect_types = {"/cam/depth": "sensor_msgs/msg/Image", "/cam/depth/camera_info": "sensor_msgs/msg/CameraInfo",
                    "/cam/points": "sensor_msgs/msg/PointCloud2", "/cam/status": status_type}
    # 1) plain rosbags (what any rosbag2 tool sees): types, RIHS01 hashes of a real ROS build, stamps
    kilted = get_typestore(Stores.ROS2_KILTED)
    ours = make_typestore()
    with Reader(path) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == expect_types
        for c in reader.connections:
            ref = ours if c.msgtype.startswith("ppd_ros/") else kilted
            assert c.digest == ref.hash_rihs01(c.msgtype), c.topic
        stamps = [(c.topic, t) for c, t, _ in reader.messages()]
        assert stamps == [(topic, stamp) for topic, _, stamp in written]
        for c, t, raw in reader.messages():  # rosbags' own CDR decoder agrees with rclpy's bytes
            decoded = ours.deserialize_cdr(raw, c.msgtype)
            assert decoded.header.stamp.sec * 10**9 + decoded.header.stamp.nanosec in (t, t - 1)
    # 2) our reader: rclpy messages equal to what was written
    back = list(read_bag(path))
    assert [(t, s) for t, _, s, _ in back] == [(t, s) for t, _, s in written]
    for (topic, msgtype, _, msg), (_, orig, _) in zip(back, written):
        assert msgtype == expect_types[topic] and type(msg) is type(orig)
        if topic.endswith("/depth"):
            np.testing.assert_array_equal(image_msg_to_depth(msg), image_msg_to_depth(orig))
        elif topic.endswith("/points"):
            assert msg_to_cloud(msg).tobytes() == msg_to_cloud(orig).tobytes()
        elif topic.endswith("/status"):
            assert messages.status_to_dict(msg)["stream_index"] == messages.status_to_dict(orig)["stream_index"]
        else:
            assert msg == orig
    assert bag_summary(path)["/cam/points"]["count"] == 3


def test_depth_status_hash_matches_colcon_build() -> None:
    built = REPO / "install" / "ppd_ros" / "share" / "ppd_ros" / "msg" / "DepthStatus.json"
    if not built.is_file():
        pytest.skip("colcon build output not present (scripts/colcon_build.sh)")
    want = json.loads(built.read_text())["type_hashes"][0]["hash_string"]
    assert make_typestore().hash_rihs01("ppd_ros/msg/DepthStatus") == want


def test_unknown_type_read_as_rosbags_object(tmp_path: Path) -> None:
    """A bag from elsewhere with a type rclpy cannot import here still reads (rosbags object)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_types_from_msg

    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(get_types_from_msg("float32 range_m\nstring label", "other_pkg/msg/Thing"))
    msg = ts.types["other_pkg/msg/Thing"](range_m=2.5, label="cone")
    with Writer(tmp_path / "foreign", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/thing", "other_pkg/msg/Thing", typestore=ts)
        w.write(conn, 42, ts.serialize_cdr(msg, "other_pkg/msg/Thing"))
    ((topic, msgtype, stamp, got),) = list(read_bag(tmp_path / "foreign"))
    assert (topic, msgtype, stamp, got.label, got.range_m) == ("/thing", "other_pkg/msg/Thing", 42, "cone", 2.5)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="'zip'"):
        BagRecorder(tmp_path / "a", "zip")  # type: ignore[arg-type]
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="already exists"):
        BagRecorder(tmp_path / "exists")
    with pytest.raises(BagError, match="does not exist"):
        list(read_bag(tmp_path / "nope"))
    rec = BagRecorder(tmp_path / "b")
    with pytest.raises(BagError, match="absolute"):
        rec.write("depth", Header(), 1)
    with pytest.raises(BagError, match="not a ROS message"):
        rec.write("/x", object(), 1)
    rec.close()
    rec.close()
    with pytest.raises(BagError, match="closed"):
        rec.write("/x", Header(), 1)

"""PointCloud2 <-> numpy: depth_image_proc layout, round trips, byte order, padding, errors."""
from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ppd_ros.errors import InputError
from ppd_ros.pointcloud import PackedCloud, pack_xyz, pack_xyzrgb, unpack_rgb
from ppd_ros.ros.conversions import cloud_to_msg, msg_to_cloud, msg_to_packed_cloud

RNG = np.random.default_rng(3)


def points(h: int = 3, w: int = 4) -> np.ndarray:
    p = RNG.standard_normal((h, w, 3)).astype(np.float32)
    p[0, 1] = np.nan  # invalid point
    return p


def wire(msg: PointCloud2) -> PointCloud2:
    return deserialize_message(serialize_message(msg), PointCloud2)


def test_xyzrgb_round_trip_depth_image_proc_layout() -> None:
    p, rgb = points(), RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    h = Header(frame_id="cam_optical_frame")
    msg = wire(cloud_to_msg(pack_xyzrgb(p, rgb), h))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (3, 4, 32, 128)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == \
        [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)]
    assert not msg.is_dense and not msg.is_bigendian and msg.header.frame_id == "cam_optical_frame"
    assert isinstance(msg.data, array.array) and len(msg.data) == 3 * 128
    cloud = msg_to_cloud(msg)
    assert cloud.shape == (3, 4) and cloud.dtype.names == ("x", "y", "z", "rgb")
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], -1), p)
    np.testing.assert_array_equal(unpack_rgb(cloud["rgb"]), rgb)


def test_xyz_round_trip_and_packed() -> None:
    packed = pack_xyz(points(2, 5))
    msg = wire(cloud_to_msg(packed))
    again = msg_to_packed_cloud(msg)
    assert again == packed


def test_bigendian_padded_rows_and_counts() -> None:
    h, w = 2, 3
    dt = np.dtype({"names": ["intensity", "xyz", "ring"], "formats": [">f8", (">f4", (3,)), ">u2"],
                   "offsets": [0, 8, 20], "itemsize": 24})
    arr = np.zeros((h, w), dt)
    arr["intensity"] = RNG.random((h, w))
    arr["xyz"] = RNG.random((h, w, 3))
    arr["ring"] = RNG.integers(0, 65535, (h, w))
    rows = np.zeros((h, 24 * w + 8), np.uint8)  # 8 bytes of row padding
    rows[:, :72] = arr.view(np.uint8).reshape(h, 72)
    msg = PointCloud2(height=h, width=w, point_step=24, row_step=80, is_bigendian=True, is_dense=True)
    msg.fields = [PointField(name="intensity", offset=0, datatype=PointField.FLOAT64, count=1),
                  PointField(name="xyz", offset=8, datatype=PointField.FLOAT32, count=3),
                  PointField(name="ring", offset=20, datatype=PointField.UINT16, count=1)]
    msg.data = array.array("B", rows.tobytes())
    out = msg_to_cloud(wire(msg))
    assert out.dtype["intensity"].isnative and out["xyz"].shape == (h, w, 3)
    for name in dt.names:
        np.testing.assert_array_equal(out[name], arr[name])


def test_empty_cloud() -> None:
    msg = PointCloud2(height=0, width=0, point_step=16, row_step=0)
    msg.fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1)]
    assert msg_to_cloud(msg).shape == (0, 0)


@pytest.mark.parametrize("change, match", [
    ({"point_step": 4}, "past point_step"),
    ({"row_step": 10}, "row_step 10"),
    ({"data": b"\x00" * 7}, "needs 32 bytes"),
    ({"fields": []}, "no fields"),
    ({"fields": [PointField(name="x", offset=0, datatype=9, count=1)]}, "datatype 9"),
    ({"fields": [PointField(name="x", offset=0, datatype=7, count=1)] * 2}, "unique"),
    ({"fields": [PointField(name="x", offset=0, datatype=7, count=0)]}, "count"),
])
def test_bad_clouds(change: dict, match: str) -> None:
    msg = PointCloud2(height=1, width=2, point_step=16, row_step=32)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.data = bytes(32)
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(InputError, match=match):
        msg_to_cloud(msg)


def test_cloud_to_msg_rejects_inconsistent_packed() -> None:
    bad = PackedCloud(pack_xyz(points()).fields, b"\x00" * 10, 3, 4, 16, 64)
    with pytest.raises(InputError, match="expected 192 bytes"):
        cloud_to_msg(bad)


def test_matches_sensor_msgs_py_when_present() -> None:
    point_cloud2 = pytest.importorskip("sensor_msgs_py.point_cloud2", reason="sensor_msgs_py: real ROS install only")
    msg = cloud_to_msg(pack_xyz(points()))
    ref = point_cloud2.read_points(msg, field_names=("x", "y", "z"), skip_nans=False)
    ours = msg_to_cloud(msg).reshape(-1)
    for n in "xyz":
        np.testing.assert_array_equal(np.asarray(ref[n]).reshape(-1), ours[n])

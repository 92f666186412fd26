"""Organized cloud packing: depth_image_proc byte layout, round trips, byte order, big images."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from ppd_ros import pointcloud as PC
from ppd_ros.errors import InputError
from ppd_ros.geometry import depth_to_points

K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])


def _points(h: int, w: int, seed: int = 0) -> np.ndarray:
    p = np.random.RandomState(seed).randn(h, w, 3).astype(np.float32)
    p[0, 1] = np.nan  # an invalid point
    return p


def test_xyz_layout_is_depth_image_proc() -> None:
    p = _points(3, 5)
    c = PC.pack_xyz(p)
    assert c.fields == (("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1))
    assert (c.height, c.width, c.point_step, c.row_step) == (3, 5, 16, 80)
    assert c.is_bigendian is False and c.is_dense is False
    assert isinstance(c.data, (bytes, bytearray)) and len(c.data) == 3 * 80
    # point (row 2, col 3) sits at row_step*2 + point_step*3: x, y, z little-endian float32, zero pad
    off = 80 * 2 + 16 * 3
    assert c.data[off:off + 16] == struct.pack("<fff", *p[2, 3]) + b"\0" * 4
    nan_off = 16 * 1
    assert all(np.isnan(struct.unpack("<fff", c.data[nan_off:nan_off + 12])))


def test_xyzrgb_layout_and_rgb_bytes() -> None:
    p = _points(2, 4)
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[1, 2] = (0x12, 0x34, 0x56)
    c = PC.pack_xyzrgb(p, rgb)
    assert c.fields == (("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1))
    assert (c.point_step, c.row_step, len(c.data)) == (32, 128, 256)
    off = 128 * 1 + 32 * 2
    rec = c.data[off:off + 32]
    assert rec[:12] == struct.pack("<fff", *p[1, 2]) and rec[12:16] == b"\0" * 4
    assert rec[16:20] == bytes([0x56, 0x34, 0x12, 0x00])  # B, G, R, 0 = little-endian 0x00RRGGBB
    assert struct.unpack("<I", rec[16:20])[0] == 0x00123456 and rec[20:] == b"\0" * 12
    packed = PC.pack_rgb(rgb)
    assert packed.dtype == np.float32 and packed.view(np.uint32)[1, 2] == 0x00123456


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (7, 3)])
def test_round_trip_xyz_and_xyzrgb_organized_with_nan(shape: tuple[int, int]) -> None:
    p = _points(*shape, seed=3) if shape != (1, 1) else np.full((1, 1, 3), np.nan, np.float32)
    rgb = np.random.RandomState(4).randint(0, 256, shape + (3,), dtype=np.uint8)
    for cloud in (PC.pack_xyz(p), PC.pack_xyzrgb(p, rgb)):
        assert (cloud.height, cloud.width) == shape  # height = rows, width = cols
        np.testing.assert_array_equal(PC.cloud_to_xyz(cloud), p)  # NaN positions compare equal
    fields = PC.unpack_cloud(PC.pack_xyzrgb(p, rgb))
    np.testing.assert_array_equal(PC.unpack_rgb(fields["rgb"]), rgb)
    assert fields["x"].shape == shape


def test_round_trip_big_1080p_image() -> None:
    h, w = 1080, 1920
    depth = np.linspace(0.5, 9.0, h * w, dtype=np.float32).reshape(h, w)
    depth[::97, ::89] = np.nan
    rgb = (np.arange(h * w * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(h, w, 3)
    cloud = PC.depth_to_cloud(depth, K, rgb=rgb)
    assert (cloud.height, cloud.width, cloud.row_step, len(cloud.data)) == (h, w, 32 * w, 32 * w * h)
    np.testing.assert_array_equal(PC.cloud_to_xyz(cloud), depth_to_points(depth, K))
    np.testing.assert_array_equal(PC.unpack_rgb(PC.unpack_cloud(cloud)["rgb"]), rgb)


def test_depth_to_cloud_stride_and_max_range() -> None:
    depth = np.full((6, 9), 2.0, np.float32)
    depth[:, 6:] = 8.0
    rgb = np.random.RandomState(0).randint(0, 256, (6, 9, 3), dtype=np.uint8)
    cloud = PC.depth_to_cloud(depth, K, rgb=rgb, stride=3, max_range=5.0)
    assert (cloud.height, cloud.width) == (2, 3)
    xyz = PC.cloud_to_xyz(cloud)
    assert np.isnan(xyz[:, 2]).all() and np.isfinite(xyz[:, :2]).all()
    np.testing.assert_array_equal(PC.unpack_rgb(PC.unpack_cloud(cloud)["rgb"]), rgb[::3, ::3])
    assert xyz[1, 1, 0] == np.float32((3 - 319.5) * 2.0 * np.float32(1 / 500.0))  # pixel index 3, not 1
    with pytest.raises(InputError):
        PC.depth_to_cloud(depth, K, rgb=rgb[:5])


def test_unpack_big_endian_any_field_order_padded_rows() -> None:
    h, w, step, row_step = 3, 4, 24, 24 * 4 + 8  # 8 bytes of row padding
    fields = (("intensity", 0, PC.UINT16, 1), ("z", 4, PC.FLOAT32, 1), ("x", 8, PC.FLOAT32, 1),
              ("y", 12, PC.FLOAT32, 1), ("normal", 16, PC.INT16, 2), ("ring", 20, PC.UINT8, 1))
    rs = np.random.RandomState(7)
    vals = {"x": rs.randn(h, w).astype(np.float32), "y": rs.randn(h, w).astype(np.float32),
            "z": rs.randn(h, w).astype(np.float32), "intensity": rs.randint(0, 60000, (h, w)).astype(np.uint16),
            "normal": rs.randint(-900, 900, (h, w, 2)).astype(np.int16),
            "ring": rs.randint(0, 255, (h, w)).astype(np.uint8)}
    fmt = {PC.UINT16: "H", PC.FLOAT32: "f", PC.INT16: "h", PC.UINT8: "B"}
    data = bytearray(row_step * h)
    for r in range(h):
        for c in range(w):
            for name, off, dt, cnt in fields:
                v = vals[name][r, c]
                struct.pack_into(">" + fmt[dt] * cnt, data, r * row_step + c * step + off, *np.atleast_1d(v))
    cloud = PC.PackedCloud(fields, bytes(data), h, w, step, row_step, is_bigendian=True)
    got = PC.unpack_cloud(cloud)
    for name, want in vals.items():
        np.testing.assert_array_equal(got[name], want)
        assert got[name].dtype.isnative
    np.testing.assert_array_equal(PC.cloud_to_xyz(cloud), np.stack([vals["x"], vals["y"], vals["z"]], -1))


def test_bad_clouds_raise_typed_errors() -> None:
    good = PC.pack_xyz(_points(2, 2))
    with pytest.raises(InputError, match="bytes"):
        PC.unpack_cloud(PC.PackedCloud(good.fields, good.data[:-1], 2, 2, 16, 32))
    with pytest.raises(InputError, match="datatype"):
        PC.unpack_cloud(PC.PackedCloud((("x", 0, 9, 1),), good.data, 2, 2, 16, 32))
    with pytest.raises(InputError, match="row_step"):
        PC.unpack_cloud(PC.PackedCloud(good.fields, good.data, 2, 2, 16, 16))
    with pytest.raises(InputError, match="no field"):
        PC.cloud_to_xyz(PC.PackedCloud((("x", 0, 7, 1),), good.data, 2, 2, 16, 32))
    with pytest.raises(InputError):
        PC.pack_xyz(np.zeros((4, 3)))
    with pytest.raises(InputError, match="uint8"):
        PC.pack_rgb(np.zeros((2, 2, 3), np.float32))

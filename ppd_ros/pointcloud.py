"""Organized point clouds packed byte-for-byte as depth_image_proc does, in pure numpy (no ROS).

Layout (``point_cloud_xyz`` / ``point_cloud_xyzrgb`` of depth_image_proc, which use sensor_msgs'
``setPointCloud2FieldsByString(…, "xyz"[, "rgb"])``):

* ``xyz``: x, y, z FLOAT32 at offsets 0, 4, 8, 4 padding bytes, ``point_step = 16``;
* ``xyzrgb``: as xyz plus ``rgb`` FLOAT32 at offset 16 holding the bytes B, G, R, 0 (the
  little-endian uint32 ``0x00RRGGBB`` reinterpreted as float32), 12 padding bytes, ``point_step = 32``;
* ``height = rows``, ``width = cols``, ``row_step = point_step * width``, invalid points are NaN,
  ``is_dense = False``, little-endian; padding bytes are zero.

:class:`PackedCloud` carries exactly the PointCloud2 fields the ROS layer copies into a message.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .geometry import Intrinsics, depth_to_points

# sensor_msgs/PointField datatype numbers and their numpy types
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_NP_TYPES = {INT8: "i1", UINT8: "u1", INT16: "i2", UINT16: "u2", INT32: "i4", UINT32: "u4",
             FLOAT32: "f4", FLOAT64: "f8"}

Field = tuple[str, int, int, int]  # (name, offset in bytes, PointField datatype, count)
XYZ_FIELDS: tuple[Field, ...] = (("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1))
XYZRGB_FIELDS: tuple[Field, ...] = XYZ_FIELDS + (("rgb", 16, FLOAT32, 1),)
XYZ_POINT_STEP, XYZRGB_POINT_STEP = 16, 32


@dataclass(frozen=True)
class PackedCloud:
    """The payload of a sensor_msgs/PointCloud2 (header excluded)."""

    fields: tuple[Field, ...]
    data: bytes | bytearray  # packers return a fresh bytearray (filled in place); read-only by convention
    height: int
    width: int
    point_step: int
    row_step: int
    is_bigendian: bool = False
    is_dense: bool = False


def dtype_from_fields(fields: tuple[Field, ...] | list[Field], point_step: int,
                      is_bigendian: bool = False) -> np.dtype:
    """Structured dtype of one point (itemsize ``point_step``) from PointField tuples, any order."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for name, offset, datatype, count in fields:
        if datatype not in _NP_TYPES:
            raise InputError(f"field {name!r}: unknown PointField datatype {datatype} (expected 1..8)")
        base = np.dtype(order + _NP_TYPES[datatype])
        names.append(name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(offset)
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    except ValueError as exc:
        raise InputError(f"fields {list(fields)} do not fit point_step {point_step}: {exc}") from exc


def _rgb_u8(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb)
    if c.shape[-1:] != (3,) or c.dtype != np.uint8:
        raise InputError(f"rgb must be (..., 3) uint8, got shape {c.shape} dtype {c.dtype}")
    return c


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 R, G, B -> (...) float32 whose bits are the uint32 0x00RRGGBB."""
    c = _rgb_u8(rgb)
    packed = (c[..., 0].astype(np.uint32) << 16) | (c[..., 1].astype(np.uint32) << 8) | c[..., 2]
    return packed.astype("<u4").view("<f4")


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(...) float32 packed 0x00RRGGBB -> (..., 3) uint8 R, G, B (inverse of :func:`pack_rgb`)."""
    bits = np.asarray(rgb).astype(np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(np.uint8)


def _organized(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[0] < 1 or p.shape[1] < 1:
        raise InputError(f"organized points must be (H, W, 3), got shape {p.shape}")
    return p


def _record_buffer(h: int, w: int, point_step: int) -> tuple[bytearray, np.ndarray]:
    """A zeroed bytearray of h*w records and its (h, w, point_step/4) little-endian float32 view.

    Why a bytearray: numpy fills it in place and it is handed out as is (``array.array('B', data)``
    takes it on the fast path), saving the second full copy that ``ndarray.tobytes()`` makes.
    """
    data = bytearray(h * w * point_step)
    return data, np.frombuffer(data, "<f4").reshape(h, w, point_step // 4)


def _put_xyz(buf: np.ndarray, p: np.ndarray) -> None:
    """Copy (H, W, 3) points into the first 3 floats of each (H, W, n) record, plane by plane
    (why: numpy copies an inner axis of length 3 element-wise, ~5x slower than three planes)."""
    for i in range(3):
        buf[..., i] = p[..., i]


def pack_xyz(points: np.ndarray) -> PackedCloud:
    """(H, W, 3) points in metres (NaN = invalid) -> organized ``xyz`` cloud, height H, width W."""
    p = _organized(points)
    h, w = p.shape[:2]
    data, buf = _record_buffer(h, w, XYZ_POINT_STEP)
    _put_xyz(buf, p)
    return PackedCloud(XYZ_FIELDS, data, h, w, XYZ_POINT_STEP, XYZ_POINT_STEP * w)


def pack_xyzrgb(points: np.ndarray, rgb: np.ndarray) -> PackedCloud:
    """(H, W, 3) points in metres and (H, W, 3) uint8 RGB -> organized ``xyzrgb`` cloud."""
    p = _organized(points)
    h, w = p.shape[:2]
    c = _rgb_u8(rgb)
    if c.shape[:2] != (h, w):
        raise InputError(f"rgb shape {c.shape} does not match points shape {p.shape}")
    data, buf = _record_buffer(h, w, XYZRGB_POINT_STEP)
    _put_xyz(buf, p)
    # bytes 16, 17, 18 = B, G, R (byte 19 stays 0): the little-endian uint32 0x00RRGGBB, written
    # as bytes so no float (denormal) handling can touch the bits; one plane per copy is fastest
    b8 = buf.view(np.uint8).reshape(h, w, XYZRGB_POINT_STEP)
    b8[..., 16], b8[..., 17], b8[..., 18] = c[..., 2], c[..., 1], c[..., 0]
    return PackedCloud(XYZRGB_FIELDS, data, h, w, XYZRGB_POINT_STEP, XYZRGB_POINT_STEP * w)


def depth_to_cloud(depth: np.ndarray, K: Intrinsics, rgb: np.ndarray | None = None, stride: int = 1,
                   max_range: float | None = None) -> PackedCloud:
    """(H, W) depth (float metres) + pixel intrinsics [+ (H, W, 3) uint8 RGB] -> organized cloud.

    Back-projection as depth_image_proc (see :func:`ppd_ros.geometry.depth_to_points`); with
    ``stride`` k the cloud is (ceil(H/k), ceil(W/k)) and colours are sampled at the same pixels.
    """
    pts = depth_to_points(depth, K, stride=stride, max_range=max_range)
    if rgb is None:
        return pack_xyz(pts)
    c = np.asarray(rgb)
    if c.shape[:2] != np.shape(depth):
        raise InputError(f"rgb shape {c.shape} does not match depth shape {np.shape(depth)}")
    return pack_xyzrgb(pts, c[::stride, ::stride])


def unpack_cloud(cloud: PackedCloud) -> dict[str, np.ndarray]:
    """Every field of a cloud as an (height, width[, count]) native-endian array (a copy).

    Honours ``is_bigendian``, arbitrary field order/offsets and rows padded beyond
    ``point_step * width``.
    """
    dt = dtype_from_fields(cloud.fields, cloud.point_step, cloud.is_bigendian)
    h, w = cloud.height, cloud.width
    if cloud.row_step < cloud.point_step * w:
        raise InputError(f"row_step {cloud.row_step} < point_step {cloud.point_step} * width {w}")
    need = cloud.row_step * (h - 1) + cloud.point_step * w if h and w else 0
    if len(cloud.data) < need:
        raise InputError(f"cloud data has {len(cloud.data)} bytes, {need} needed for {h}x{w}")
    raw = np.frombuffer(cloud.data, np.uint8, count=need)
    arr = np.ndarray((h, w), dt, raw, 0, (cloud.row_step, cloud.point_step)) if need else np.zeros((h, w), dt)
    out = {}
    for name in dt.names:
        a = arr[name]
        out[name] = a.astype(a.dtype.newbyteorder("="))
    return out


def cloud_to_xyz(cloud: PackedCloud) -> np.ndarray:
    """(height, width, 3) float32 x, y, z of a cloud (NaN stays NaN)."""
    f = unpack_cloud(cloud)
    missing = [n for n in "xyz" if n not in f]
    if missing:
        raise InputError(f"cloud has no field(s) {missing}; fields are {[x[0] for x in cloud.fields]}")
    return np.stack([f["x"], f["y"], f["z"]], axis=-1).astype(np.float32)

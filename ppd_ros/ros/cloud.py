"""ppd_ros.pointcloud.PackedCloud <-> sensor_msgs/PointCloud2, and PointCloud2 -> structured numpy.

Packing (depth_image_proc's byte layout) is done by ``ppd_ros.pointcloud``; this module only moves
the bytes into a message (``array.array('B')``, the fast path) and reads any PointCloud2 back,
honouring field offsets/counts, ``point_step``, ``row_step`` padding and ``is_bigendian``.
sensor_msgs_py is used by the tests as a reference where it is importable.
"""
from __future__ import annotations

import array
from typing import Any, Final

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from ..errors import InputError
from ..pointcloud import PackedCloud, dtype_from_fields
from .buffers import as_u8

#: largest accepted number of points (a 16384 x 16384 organized cloud)
MAX_POINTS: Final[int] = 16384 * 16384
_SIZES: Final[dict[int, int]] = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}


def cloud_to_msg(cloud: PackedCloud, header: Header | None = None) -> PointCloud2:
    """PackedCloud -> PointCloud2 (same fields, sizes, endianness, density; ``header`` as given)."""
    need = cloud.row_step * cloud.height
    if len(cloud.data) != need or cloud.row_step < cloud.point_step * cloud.width:
        raise InputError(f"packed cloud {cloud.width}x{cloud.height}: {len(cloud.data)} bytes with row_step "
                         f"{cloud.row_step}, point_step {cloud.point_step}; expected {need} bytes")
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(cloud.height), int(cloud.width)
    msg.fields = [PointField(name=n, offset=int(o), datatype=int(t), count=int(c)) for n, o, t, c in cloud.fields]
    msg.is_bigendian = bool(cloud.is_bigendian)
    msg.point_step, msg.row_step = int(cloud.point_step), int(cloud.row_step)
    msg.is_dense = bool(cloud.is_dense)
    # Either way exactly one copy: without ROS_PYTHON_CHECK_FIELDS the setter itself builds an
    # array('B') from bytes (memcpy); with it, only an array('B') is stored without the slow checks.
    msg.data = array.array("B", cloud.data) if getattr(msg, "_check_fields", True) else bytes(cloud.data)
    return msg


def _uint(msg: Any, name: str) -> int:
    v = getattr(msg, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise InputError(f"PointCloud2.{name} must be a non-negative integer, got {v!r}")
    return int(v)


def _fields(msg: PointCloud2, point_step: int) -> tuple[tuple[str, int, int, int], ...]:
    out, names = [], set()
    for f in msg.fields:
        name, off, dt, cnt = f.name, f.offset, f.datatype, f.count
        if not isinstance(name, str) or not name or name in names:
            raise InputError(f"PointCloud2 field names must be unique non-empty strings, got {name!r}")
        if dt not in _SIZES:
            raise InputError(f"field {name!r}: PointField datatype {dt!r}; expected 1..8")
        if not isinstance(cnt, (int, np.integer)) or cnt < 1 or not isinstance(off, (int, np.integer)) or off < 0:
            raise InputError(f"field {name!r}: offset {off!r} and count {cnt!r} must be >= 0 and >= 1")
        if off + _SIZES[dt] * cnt > point_step:
            raise InputError(f"field {name!r} ends at byte {off + _SIZES[dt] * cnt}, past point_step {point_step}")
        names.add(name)
        out.append((name, int(off), int(dt), int(cnt)))
    if not out:
        raise InputError("PointCloud2 has no fields")
    return tuple(out)


def _validated(msg: PointCloud2) -> tuple[tuple[tuple[str, int, int, int], ...], int, int, int, int, np.ndarray]:
    """(fields, height, width, point_step, row_step, data as a uint8 view) of a checked PointCloud2."""
    h, w = _uint(msg, "height"), _uint(msg, "width")
    ps, rs = _uint(msg, "point_step"), _uint(msg, "row_step")
    if h * w > MAX_POINTS:
        raise InputError(f"PointCloud2 {w}x{h} has more than {MAX_POINTS} points")
    if ps < 1:
        raise InputError(f"PointCloud2.point_step must be >= 1, got {ps}")
    fields = _fields(msg, ps)
    if rs < ps * w:
        raise InputError(f"PointCloud2.row_step {rs} < point_step {ps} x width {w}")
    buf = as_u8(msg.data, "PointCloud2.data")
    need = rs * h
    if buf.size != need and not (h and buf.size == rs * (h - 1) + ps * w):
        raise InputError(f"PointCloud2 {w}x{h} with row_step {rs} needs {need} bytes of data, got {buf.size}")
    return fields, h, w, ps, rs, buf


def msg_to_packed_cloud(msg: PointCloud2) -> PackedCloud:
    """Validated PointCloud2 -> PackedCloud (bytes copied, layout unchanged)."""
    fields, h, w, ps, rs, buf = _validated(msg)
    data = buf.tobytes() + bytes(rs * h - buf.size)
    return PackedCloud(fields, data, h, w, ps, rs, bool(msg.is_bigendian), bool(msg.is_dense))


def msg_to_cloud(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> new (height, width) native-endian structured array, one field per PointField.

    Fields with ``count`` > 1 become sub-arrays; the itemsize stays ``point_step`` (bytes between
    fields are copied as they are when the byte order is native, else zero); the row padding beyond
    ``point_step * width`` is skipped. An empty cloud gives an (h, w) array of size 0.
    """
    fields, h, w, ps, rs, buf = _validated(msg)
    big = bool(msg.is_bigendian)
    dt = dtype_from_fields(fields, ps, big)
    native = np.dtype({"names": dt.names,
                       "formats": [dt.fields[n][0].newbyteorder("=") for n in dt.names],
                       "offsets": [dt.fields[n][1] for n in dt.names], "itemsize": ps})
    if h == 0 or w == 0:
        return np.zeros((h, w), native)
    if dt == native:  # one copy of the bytes (row padding dropped), then a zero-copy dtype view
        rows = np.lib.stride_tricks.as_strided(buf, shape=(h, w * ps), strides=(rs, 1), writeable=False)
        return np.array(rows).view(native).reshape(h, w)
    view = np.ndarray((h, w), dt, buf, 0, (rs, ps))
    out = np.zeros((h, w), native)  # byte-swapped field by field; other bytes zero
    for name in dt.names:
        out[name] = view[name]
    return out

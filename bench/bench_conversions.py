"""Cost of the ROS message conversions (ms per frame, median of --repeat runs after warm-up).

    python bench/bench_conversions.py [--repeat 20] [--sizes 640x480,1920x1080]

Measures Image -> RGB for every input encoding, depth -> 32FC1 / 16UC1 Image, Image -> depth,
JPEG decode, organized cloud packing (ppd_ros.pointcloud) -> PointCloud2 and PointCloud2 -> numpy.
The last line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppd_ros.pointcloud import pack_xyz, pack_xyzrgb  # noqa: E402
from ppd_ros.ros import conversions as cv  # noqa: E402


def bench(fn: Callable[[], Any], repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return round(statistics.median(times), 3)


def run(width: int, height: int, repeat: int, warmup: int = 2) -> dict[str, float]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)
    out: dict[str, float] = {}
    for enc in cv.RGB_ENCODINGS:
        if enc in ("uyvy", "yuyv"):
            continue  # aliases of yuv422 / yuv422_yuy2
        msg = cv.rgb_to_image_msg(rgb, None, enc)
        out[f"image_to_rgb.{enc}"] = bench(lambda m=msg: cv.image_to_rgb(m), repeat, warmup)
    padded = cv.rgb_to_image_msg(rgb, None, "bgr8", step=width * 3 + 64)
    out["image_to_rgb.bgr8_padded_step"] = bench(lambda: cv.image_to_rgb(padded), repeat, warmup)
    jpg = cv.rgb_to_compressed_msg(rgb, None, "jpeg", 90)
    out["compressed_to_rgb.jpeg90"] = bench(lambda: cv.compressed_to_rgb(jpg), repeat, warmup)
    out["rgb_to_image_msg.bgr8"] = bench(lambda: cv.rgb_to_image_msg(rgb, None, "bgr8"), repeat, warmup)
    depth = (rng.random((height, width), dtype=np.float32) * 10).astype(np.float32)
    depth[::7, ::5] = np.nan
    depth[:10] = np.inf
    for enc in ("32FC1", "16UC1"):
        out[f"depth_to_image_msg.{enc}"] = bench(lambda e=enc: cv.depth_to_image_msg(depth, None, e), repeat, warmup)
        m = cv.depth_to_image_msg(depth, None, enc)
        out[f"image_msg_to_depth.{enc}"] = bench(lambda m=m: cv.image_msg_to_depth(m), repeat, warmup)
    pts = rng.random((height, width, 3), dtype=np.float32)
    out["pack_xyz"] = bench(lambda: pack_xyz(pts), repeat, warmup)
    out["pack_xyzrgb"] = bench(lambda: pack_xyzrgb(pts, rgb), repeat, warmup)
    packed = pack_xyzrgb(pts, rgb)
    out["cloud_to_msg.xyzrgb"] = bench(lambda: cv.cloud_to_msg(packed), repeat, warmup)
    out["pack_xyzrgb+cloud_to_msg"] = bench(lambda: cv.cloud_to_msg(pack_xyzrgb(pts, rgb)), repeat, warmup)
    cmsg = cv.cloud_to_msg(packed)
    out["msg_to_cloud.xyzrgb"] = bench(lambda: cv.msg_to_cloud(cmsg), repeat, warmup)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default="640x480,1920x1080", help="comma-separated WxH list (even widths)")
    a = ap.parse_args(argv)
    results: dict[str, Any] = {"bench": "conversions", "unit": "ms_median", "repeat": a.repeat,
                               "cv_bridge": cv.HAVE_CV_BRIDGE, "numpy": np.__version__,
                               "python": platform.python_version(), "cpus": os.cpu_count(), "sizes": {}}
    for size in a.sizes.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        res = run(w, h, a.repeat, a.warmup)
        results["sizes"][f"{w}x{h}"] = res
        print(f"--- {w}x{h} (median ms of {a.repeat})")
        for k, v in res.items():
            print(f"  {k:32s} {v:9.3f}")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()

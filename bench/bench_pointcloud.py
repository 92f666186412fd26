"""Cost of back-projection, cloud packing/unpacking and the depth filters on CPU (numpy).

    .venv/bin/python bench/bench_pointcloud.py [--sizes 640x480 1920x1080] [--repeat 10]

Also times the RANSAC metric alignment (``recover_metric_depth_ransac``) over all valid pixels.
Prints ms per call (median of ``--repeat`` after one warm-up) per operation and resolution, then
one JSON line. The statistical (KNN) outlier filter is timed on a stride-4 subsample, as it is
O(N log N) and meant for offline clouds; the organized flying-pixel filter runs on every pixel.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable

import numpy as np

from ppd_ros.geometry import (depth_to_points, flying_pixel_mask, recover_metric_depth_ransac,
                              statistical_outlier_keep, upsample_depth)
from ppd_ros.pointcloud import depth_to_cloud, pack_xyz, pack_xyzrgb, unpack_cloud


def scene(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic (H, W) depth (slanted wall + box, NaN holes), RGB and pixel K."""
    v, u = np.mgrid[:h, :w].astype(np.float32)
    depth = 3.0 + 0.5 * u / w + 0.2 * v / h
    depth[h // 4:h // 2, w // 3:w // 2] = 1.2
    depth[::53, ::47] = np.nan
    rgb = np.random.RandomState(0).randint(0, 256, (h, w, 3), dtype=np.uint8)
    K = np.array([[0.8 * w, 0, (w - 1) / 2], [0, 0.8 * w, (h - 1) / 2], [0, 0, 1]])
    return depth.astype(np.float32), rgb, K


def timeit(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (allocations, lazy imports)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench_size(h: int, w: int, repeat: int) -> dict[str, float]:
    depth, rgb, K = scene(h, w)
    pts = depth_to_points(depth, K)
    cloud = pack_xyzrgb(pts, rgb)
    sub = pts[::4, ::4].reshape(-1, 3)
    sub = sub[np.isfinite(sub).all(1)]
    valid = np.isfinite(depth)
    rel = np.where(valid, np.log1p(np.nan_to_num(depth)) / 2, 0).astype(np.float32)
    ops: dict[str, Callable[[], object]] = {
        "ransac_metric_align": lambda: recover_metric_depth_ransac(rel, np.nan_to_num(depth), valid,
                                                                   np.random.RandomState(0)),
        "depth_to_points": lambda: depth_to_points(depth, K),
        "pack_xyz": lambda: pack_xyz(pts),
        "pack_xyzrgb": lambda: pack_xyzrgb(pts, rgb),
        "depth_to_cloud_xyzrgb": lambda: depth_to_cloud(depth, K, rgb=rgb),
        "unpack_xyzrgb": lambda: unpack_cloud(cloud),
        "flying_pixel_mask_8": lambda: flying_pixel_mask(depth),
        "upsample_depth_x2": lambda: upsample_depth(depth[::2, ::2], (h, w)),
        "upsample_depth_x2_guided": lambda: upsample_depth(depth[::2, ::2], (h, w), guide=rgb),
        f"statistical_outlier_{len(sub)}pts": lambda: statistical_outlier_keep(sub),
    }
    out = {}
    for name, fn in ops.items():
        out[name] = timeit(fn, repeat if "statistical" not in name else max(1, repeat // 5))
        print(f"{w}x{h} {name:32s} {out[name]:9.2f} ms", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1920x1080"], help="WxH resolutions")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    results = {}
    for s in args.sizes:
        w, h = (int(x) for x in s.lower().split("x"))
        results[f"{w}x{h}"] = bench_size(h, w, args.repeat)
    print(json.dumps({"bench": "pointcloud", "unit": "ms_median", "numpy": np.__version__,
                      "machine": platform.processor() or platform.machine(), "results": results}))


if __name__ == "__main__":
    main()

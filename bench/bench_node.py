"""End-to-end bench and soak of the depth node (in one process, over loopback DDS).

A camera publisher sends N real frames at a fixed rate to the node; a sink subscribes to the
outputs. Reported: per-stage latency (from the `status` messages: convert, pipeline stages, metric,
publish) and stamp -> receipt latency (p50 / p95 ms), frames published / dropped by reason, resident
memory sampled during the run (after warm-up vs the end: "flat" means a few MiB), the mailbox
occupancy (one slot per camera: never more than 1) and the pairer queue. Prints one JSON line last.

    python bench/bench_node.py --frames 10000 --rate 50             # soak, reduced fixture model
    python bench/bench_node.py --frames 200 --metric --width 320     # + MoGe-2 fixture metric stage
    python bench/bench_node.py --params-file config/embedded.yaml    # embedded models instead
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
W = SHARED / "fixtures" / "ppd" / "e2e_small" / "weights.safetensors"
FIXTURE = {"model": "checkpoints", "dit_checkpoint": str(W), "semantics_checkpoint": str(W),
           "dit_preset": "fixture_ppd_e2e_dit", "semantics_preset": "fixture_da2_vit_small",
           "working_area": 64 * 48, "steps": 2, "device": "cpu", "precision": "float32", "max_frame_age": 0.0,
           "cpu_threads": 1}
MOGE = {"metric_checkpoint": str(SHARED / "fixtures" / "moge2" / "infer" / "weights.safetensors"),
        "metric_preset": "fixture_moge2_tiny", "metric_tokens": 64, "metric_refresh_every": 30}


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float]) -> dict[str, float]:
    import numpy as np
    if not values:
        return {}
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "n": int(a.size)}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=50.0, help="camera frames per second")
    ap.add_argument("--width", type=int, default=160, help="camera frame width (real frames resized)")
    ap.add_argument("--metric", action="store_true", help="add the MoGe-2 fixture metric stage")
    ap.add_argument("--params-file", default=None, help="use this YAML instead of the fixture model")
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of frames counted as warm-up")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0) or 222)
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    xml = str(REPO / "config" / "fastdds_localhost.xml")
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", xml)  # loopback only, before any participant
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", xml)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from ppd_ros.ros.camera_sim import CameraSim, load_frame
    from ppd_ros.ros.depth_node import SUCCESS, DepthNode
    from ppd_ros.ros.messages import STATUS_MSG_TYPE, status_to_dict

    rclpy.init(args=["--ros-args", "--params-file", args.params_file] if args.params_file else None,
               domain_id=args.domain)
    metric = MOGE if args.metric else {"metric": False}
    params = {} if args.params_file else {**FIXTURE, "device": args.device, **metric}
    node = DepthNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    if node.trigger_configure() != SUCCESS or node.trigger_activate() != SUCCESS:
        print(json.dumps({"error": "configure/activate failed"}))
        return 1
    frames = [load_frame(p, args.width) for p in (SHARED / "data" / "real" / "middlebury2014_motorcycle" / "left.png",
                                                  SHARED / "data" / "real" / "mrpt_kinect_bookshelf" / "rgb.png")]
    cam_node, sink = Node("bench_camera"), Node("bench_sink")
    sim = CameraSim(cam_node, [f for f, _ in frames], [k for _, k in frames], reliability="best_effort")
    e2e: list[float] = []
    stages: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_status(msg) -> None:
        st = status_to_dict(msg)
        now = sink.get_clock().now().nanoseconds
        with lock:
            e2e.append((now - st["stamp_ns"]) / 1e6)
            for k, v in st["latency_ms"].items():
                stages.setdefault(k, []).append(v)

    out_topic = "depth" if node.models.metric is not None else "depth/relative"
    sink.create_subscription(Image, out_topic, lambda m: None, 5)
    sink.create_subscription(STATUS_MSG_TYPE, "status", on_status, 50)
    ex = SingleThreadedExecutor()
    for n in (node, cam_node, sink):
        ex.add_node(n)
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                            daemon=True)
    spin.start()
    sim.wait_for_subscribers(20)
    stream = node.worker.streams[0]
    samples, max_pending, t0 = [], 0, time.monotonic()
    warm = max(1, int(args.frames * args.warmup))
    period = 1.0 / args.rate
    for i in range(args.frames):
        sim.send(i)
        max_pending = max(max_pending, len(stream.mailbox))
        if i == warm or i % max(1, args.frames // 20) == 0:
            samples.append((i, rss_mib()))
        time.sleep(max(0.0, t0 + (i + 1) * period - time.monotonic()))
    wall = time.monotonic() - t0
    deadline = time.monotonic() + 60
    # the last frame may still be in inference; only images waiting for a camera_info may stay open
    while stream.stats.snapshot().in_flight > node.inputs[0].pairer.counters["pending_images"] \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    samples.append((args.frames, rss_mib()))
    snap = stream.stats.snapshot()
    pairer = node.inputs[0].pairer.counters
    stop.set()
    spin.join(5)
    node.trigger_deactivate()
    node.trigger_cleanup()
    warm_rss = next(r for i, r in samples if i >= warm)
    after = [r for i, r in samples if i >= warm]
    result = {
        "bench": "node", "frames_sent": args.frames, "rate_hz": args.rate, "width": args.width,
        "metric": bool(args.metric or args.params_file), "wall_s": round(wall, 1),
        "received": snap.received, "published": snap.published, "dropped": snap.dropped,
        "accounted": snap.published + snap.dropped_total == snap.received, "in_flight": snap.in_flight,
        "fps_out": round(snap.published / wall, 2),
        "rss_mib": {"warm": round(warm_rss, 1), "end": round(samples[-1][1], 1), "max_after_warm": round(max(after), 1),
                    "growth_after_warm": round(samples[-1][1] - warm_rss, 1)},
        "mailbox": {"max_pending": max_pending, **stream.mailbox.counters},
        "pairer": {k: pairer[k] for k in ("pending_images", "pending_infos", "paired")},
        "latency_ms": {k: pct(v) for k, v in stages.items()}, "stamp_to_receipt_ms": pct(e2e),
    }
    print(json.dumps(result))
    for n in (node, cam_node, sink):
        n.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

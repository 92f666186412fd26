"""``ppd-ros demo``: the one-command tour (README's first command, via ``./bootstrap.sh demo``).

Cameras: the three bundled real frames (Motorcycle and Kinect calibrated, Aloe *without*
calibration) and a synthetic moving-camera sequence with exact depth. With ROS 2 available the demo
starts the real ``depth_node`` process and one ``camera_sim`` process per camera over DDS confined to
loopback (``config/fastdds_localhost.xml``, a private domain id), records the node's outputs to a
rosbag2 bag and measures what came back. ``--offline`` (or no rclpy) runs the same pipeline
in-process instead (no bag). Either way it writes pictures + ``summary.json`` to ``--out``.
``--mode`` picks the node's pipeline: ``video_stream`` (default: the small PPVD, one frame in, its depth
out), ``video_exact`` (official windows: a camera's frames come out when its 16-frame window fills or,
offline, at the end of its stream) or ``image`` (the small PPD per frame).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


NS = "/demo"
STATIC_CAMERA = "cam_static"
OUTPUT_TOPICS = ("depth", "depth/camera_info", "points", "depth/relative", "status")


@dataclass
class CameraInput:
    """One demo camera: frames to stream, intrinsics (None = uncalibrated) and GT depth (None = none)."""

    name: str
    frames: list[np.ndarray]
    K: np.ndarray | None
    gt: list[np.ndarray | None]
    real: bool


@dataclass
class Received:
    """One output frame as the demo saw it."""

    camera: str
    index: int
    relative: np.ndarray  # (H, W) model output (normalised log depth)
    metric: np.ndarray | None = None  # (H, W) metres, when a metric stage ran
    K: np.ndarray | None = None  # intrinsics of the output (given or predicted)
    latency_ms: dict[str, float] = field(default_factory=dict)
    warm: bool | None = None  # sampling warm-started from the previous frame (None: unknown)
    continuity: str = ""  # why the stream (re)started at this frame ("" = it continued)
    dit_evals: int = 0


def demo_cameras(sequence_len: int, seed: int = 7) -> list[CameraInput]:
    from ..data.real import load_real_frames
    from ..data.synthetic import SynthConfig, make_sequence
    cams = [CameraInput(f"cam_{f.name}", [f.rgb], f.K if f.name != "aloe" else None, [f.depth], True)
            for f in load_real_frames()]
    from ..data.clips import make_clip
    seq = make_sequence(seed, sequence_len, SynthConfig(height=192, width=256))
    cams.append(CameraInput("cam_synthetic", [f.rgb for f in seq], seq[0].K,
                            [np.where(np.isfinite(f.depth), f.depth, np.nan) for f in seq], False))
    # a fixed camera (only sensor noise changes): its depth must hold still (summary.json "stability")
    still = make_clip("static", seed, max(sequence_len, 2), SynthConfig(height=192, width=256))
    cams.append(CameraInput(STATIC_CAMERA, list(still.rgb), still.K,
                            [np.where(np.isfinite(d), d, np.nan) for d in still.depth], False))
    return cams


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end-to-end demo: node + cameras + bag + pictures + summary")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out/)")
    p.add_argument("--sequence", type=int, default=6, help="frames of the synthetic camera sequence")
    p.add_argument("--official", nargs=2, metavar=("DIT", "SEM"), default=None,
                   help="official ppd.pth and depth_anything_v2_vitl.pth instead of the embedded model")
    p.add_argument("--offline", action="store_true", help="no ROS processes: run the pipeline in-process")
    p.add_argument("--mode", choices=("image", "video_stream", "video_exact"), default="video_stream",
                   help="pipeline: small PPVD streaming (default), PPVD exact windows, or the small PPD per frame")
    p.add_argument("--steps", type=int, default=0,
                   help="Euler sampling steps (0 = the stream default: 1 for the embedded models, 4 for --official)")
    p.add_argument("--rate", type=float, default=1.0, help="camera frame rate [Hz]")
    p.add_argument("--timeout", type=float, default=240.0, help="give up waiting for the node after [s]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cams = demo_cameras(args.sequence)
    t0 = time.perf_counter()
    mode_note = _check_mode(args)
    bag = None
    mode = "offline"
    if not args.offline and _ros_available():
        from .demo_node import run_node_demo
        received, frames_in, bag, notes = run_node_demo(cams, out, args)
        mode = "node"
    else:
        received, frames_in, notes = run_offline(cams, args)
    from .demo_report import write_report
    summary = write_report(cams, received, frames_in, out, bag, mode, notes + mode_note)
    summary["pipeline"] = args.mode
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, out)
    return 0 if summary["frames_out"] > 0 else 1


def _ros_available() -> bool:
    try:  # the node module pulls in rclpy and the message types
        from ..ros import depth_node  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: no ROS here
        return False
    return True


def _check_mode(args: argparse.Namespace) -> list[str]:
    """Falls back to ``--mode image`` (with a note) where the video model cannot run."""
    if args.mode == "image":
        return []
    if args.official:
        args.mode = "image"
        return ["--official gives PPD image checkpoints: mode image"]
    from ..embedded import EmbeddedModelUnavailable, load_embedded_video_pipeline
    try:
        load_embedded_video_pipeline("default")  # a second or two; the node would fail to configure otherwise
    except EmbeddedModelUnavailable as exc:
        args.mode = "image"
        return [f"no usable embedded video model ({exc}): mode image"]
    return []


def load_pipeline(args: argparse.Namespace):
    from ..config import InferenceConfig
    from ..embedded import load_embedded_image_pipeline, load_embedded_video_pipeline
    from ..pipelines import PPDPipeline
    from ..embedded import EMBEDDED_STREAM_STEPS
    if args.official:
        return PPDPipeline.from_checkpoints(args.official[0], args.official[1],
                                            InferenceConfig(steps=args.steps or 4, device="auto"))
    cfg = InferenceConfig(steps=args.steps or EMBEDDED_STREAM_STEPS, device="cpu")
    if args.mode == "image":
        return load_embedded_image_pipeline("default", cfg)
    from ..ros.factory import VideoStream  # the node's binding of the stream mode
    return VideoStream(load_embedded_video_pipeline("default", cfg), "stream" if args.mode == "video_stream" else "exact")


def run_offline(cams: list[CameraInput], args: argparse.Namespace) -> tuple[list[Received], int, list[str]]:
    """Every camera's frames through the pipeline's streaming surface, in this process."""
    pipe = load_pipeline(args)
    received, frames_in = [], 0
    for cam in cams:
        state = pipe.new_stream()
        for i, rgb in enumerate(cam.frames):
            frames_in += 1
            for res in pipe.push(state, rgb, stamp=i):
                received.append(_received(cam, res))
        for res in pipe.flush(state):  # exact video mode: the camera's open window
            received.append(_received(cam, res))
    return received, frames_in, [f"offline mode: {args.mode} pipeline run in-process, no ROS node, no bag"]


def _received(cam: CameraInput, res) -> Received:
    return Received(cam.name, int(res.stamp), res.depth, None, cam.K, dict(res.timings_ms), bool(res.warm),
                    res.continuity, int(res.dit_evals))


def _print_summary(s: dict, out: Path) -> None:
    print(f"ppd-ros demo ({s['mode']}, {s.get('pipeline', 'image')}): frames in {s['frames_in']}, out {s['frames_out']}, "
          f"dropped {s['frames_dropped']}; wall {s['wall_s']} s")
    if s.get("latency_ms"):
        print("latency per stage [ms, median]: " + ", ".join(f"{k} {v:.0f}" for k, v in s["latency_ms"].items()))
    for name, m in s["real_frames"].items():
        print(f"  {name:12s} AbsRel (aligned) model {m['model_absrel']:.3f} | constant {m['constant_absrel']:.3f} "
              f"| GT-fitted plane {m['plane_absrel']:.3f}"
              + (f" | metric published on {m['metric_published_fraction']:.0%} of GT pixels"
                 if m.get("metric_published_fraction") is not None else ""))
    st = s.get("stability", {}).get("static_camera")
    if st:
        print(f"  static camera: flicker {st['static_flicker_relative']:.4f} of the depth spread (relative), "
              f"{st['static_flicker_metric']} (metric); {st['dit_evals_per_frame']} DiT evals per frame")
    for note in s.get("notes", []):
        print(f"  note: {note}")
    print(f"bag: {s['bag']}")
    print(f"pictures: {', '.join(s['pictures'])}")
    print(f"summary: {out / 'summary.json'}")

"""Evaluation of the embedded PPVD: held-out synthetic clips (per-frame PPD vs PPVD stream / exact) + real frames.

    .venv/bin/python bench/eval_video.py                 # table + one JSON line
    .venv/bin/python bench/eval_video.py --write-card    # also record the numbers in embedded_ppvd.json

Clips come from seeds disjoint from training (``ppd_ros.train.video.HELDOUT_SEED_BASE``). Columns:
per-frame aligned AbsRel, clip-aligned AbsRel (one scale/shift per clip) and flicker (error of the
frame-to-frame change of log depth after the clip-wide fit); see ``ppd_ros/train/video_eval.py``.
Real frames: each bundled frame as a one-frame stream, aligned AbsRel vs the constant baseline.
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="held-out clips")
    ap.add_argument("--length", type=int, default=24, help="frames per clip")
    ap.add_argument("--write-card", action="store_true", help="store the results in embedded_ppvd.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ppd_ros.embedded import (default_model_dir, embedded_inference_config, load_embedded_image_pipeline,
                                  load_embedded_video_pipeline)
    from ppd_ros.train.video_eval import evaluate_clips, evaluate_real_stream, format_table
    t0 = time.perf_counter()
    image = load_embedded_image_pipeline("default", embedded_inference_config(None, "default"))
    video = load_embedded_video_pipeline("default")
    clips = evaluate_clips(image, video, args.clips, args.length)
    real = evaluate_real_stream(video)
    check = evaluate_clips(image, video, 1, 8, ("ppvd_stream",))["ppvd_stream"]  # tests/test_embedded_video.py
    wall = time.perf_counter() - t0
    print(f"held-out synthetic clips: {args.clips} x {args.length} frames (128x96), 4 Euler steps, CPU")
    print(format_table(clips, real))
    result = {"synthetic_clips": {"clips": args.clips, "length": args.length, **clips}, "real_stream": real,
              "check_subset": {"clips": 1, "length": 8, "method": "ppvd_stream", **check}, "wall_s": round(wall, 1)}
    print(json.dumps(result))
    if args.write_card:
        path = default_model_dir() / "embedded_ppvd.json"
        card = json.loads(path.read_text())
        card["metrics"] = {**result, "command": "python bench/eval_video.py --write-card"}
        path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``ppd-ros image INPUT... --dit PATH --semantics PATH --out DIR``: depth .npy + coloured PNG per image."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ..errors import PPDError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image", help="relative depth for image files (offline, no ROS)")
    p.add_argument("inputs", nargs="+", help="image files (anything OpenCV reads)")
    p.add_argument("--dit", help="PPD DiT checkpoint (official ppd.pth)")
    p.add_argument("--semantics", help="semantic encoder checkpoint (official depth_anything_v2_vitl.pth)")
    p.add_argument("--model", default=None, help="embedded model name instead of checkpoint paths (see README)")
    p.add_argument("--out", default="ppd_out", help="output folder")
    p.add_argument("--steps", type=int, default=4, help="Euler sampling steps (official run.py: 4)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    p.set_defaults(func=run)


def load_pipeline(args: argparse.Namespace):
    from ..config import InferenceConfig
    from ..pipelines import PPDPipeline
    cfg = InferenceConfig(steps=args.steps, device=args.device, seed=args.seed)
    if args.dit and args.semantics:
        return PPDPipeline.from_checkpoints(args.dit, args.semantics, cfg)
    if args.model:
        from ..embedded import load_embedded_image_pipeline  # provided by the embedded-model package
        return load_embedded_image_pipeline(args.model, cfg)
    raise PPDError("give both --dit and --semantics (official checkpoints), or --model for an embedded model")


def run(args: argparse.Namespace) -> int:
    try:
        pipe = load_pipeline(args)
    except (PPDError, ImportError) as exc:
        print(f"ppd-ros image: {exc}", file=sys.stderr)
        return 2
    from ..visualize import colorize
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = pipe.new_stream()
    failures = 0
    for name in args.inputs:
        bgr = cv2.imread(name, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"ppd-ros image: cannot read {name}", file=sys.stderr)
            failures += 1
            continue
        try:
            res = pipe(np.ascontiguousarray(bgr[..., ::-1]), state)
        except PPDError as exc:
            print(f"ppd-ros image: {name}: {exc}", file=sys.stderr)
            failures += 1
            continue
        stem = out / Path(name).stem
        np.save(f"{stem}_depth.npy", res.depth)
        cv2.imwrite(f"{stem}_depth.png", colorize(res.depth))
        print(f"{name}: {res.depth.shape[1]}x{res.depth.shape[0]} -> {stem}_depth.npy, {stem}_depth.png "
              f"({sum(res.timings_ms.values()):.0f} ms)")
    return 1 if failures else 0

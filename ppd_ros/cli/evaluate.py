"""``ppd-ros evaluate``: the honest evaluation table of the embedded model (same code as bench/eval_real.py)."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate the embedded model on real + held-out synthetic frames")
    p.add_argument("--model", default="default", help="embedded model name")
    p.add_argument("--synthetic", type=int, default=32, help="held-out synthetic frames (0 = skip)")
    p.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model card's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..embedded import embedded_inference_config, load_embedded_image_pipeline
    from ..embedded import load_embedded_metric_stage
    from ..train.benchmark import evaluate_metric, evaluate_real, evaluate_synthetic_test, format_table
    cfg = embedded_inference_config(None, args.model)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    pipe = load_embedded_image_pipeline(args.model, cfg)
    real = evaluate_real(pipe)
    syn = evaluate_synthetic_test(pipe, args.synthetic) if args.synthetic else None
    met = evaluate_metric(pipe, load_embedded_metric_stage(args.model))
    print(format_table(real, syn, met))
    print(json.dumps({"model": args.model, "steps": cfg.steps, "real": real, "synthetic": syn, "metric": met}))
    return 0

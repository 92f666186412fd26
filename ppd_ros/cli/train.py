"""``ppd-ros train``: (re)train the embedded small models on synthetic data; resumable; optional export.

Stage 1-2 (``Trainer``): the encoder's decoder, then the DiT (+ decoder). Stage 3: the metric head on
the frozen trunk (minutes; cached in ``<out>/metric_head.safetensors``). ``--export DIR`` writes the
shipped weights and the model card.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.loop import TrainConfig
    p = sub.add_parser("train", help="train the embedded small models on synthetic data (CPU, hours; resumable)")
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                       default=getattr(defaults, f.name), help=f"(default {getattr(defaults, f.name)})")
    p.add_argument("--until", type=int, default=None, help="stop at this global step (resume later)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--metric-steps", type=int, default=3000, help="steps of the metric head (0 = skip it)")
    p.add_argument("--export", default=None, help="after training, write the shipped weights + card to this folder")
    p.add_argument("--export-only", action="store_true", help="skip training: export the checkpoints of --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import load_file, save_file

    from ..data.synthetic import SynthConfig
    from ..train.loop import TrainConfig, Trainer
    from ..train.metric_head import train_metric_head
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    trainer = Trainer(cfg)
    if not args.export_only:
        trainer.run(args.until)
    head_path = Path(cfg.out) / "metric_head.safetensors"
    errs_path = Path(cfg.out) / "metric_head.json"
    if args.metric_steps > 0 and not head_path.exists() and not args.export_only:
        head, errs = train_metric_head(trainer.enc.backbone, cfg.seed, cfg.frames,
                                       SynthConfig(height=cfg.height, width=cfg.width), Path(cfg.out).parent / "data",
                                       steps=args.metric_steps)
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(head_path))
        errs_path.write_text(json.dumps(errs))
        print("metric head:", errs)
    if args.export:
        extra = {}
        if head_path.exists():
            extra = {"metric_head": {"file": "embedded_metric_head.safetensors", "steps": args.metric_steps,
                                     "synthetic_heldout": json.loads(errs_path.read_text()) if errs_path.exists() else {}}}
        trainer.export(args.export, extra)
        if head_path.exists():
            save_file(load_file(str(head_path)), str(Path(args.export) / "embedded_metric_head.safetensors"))
        print(f"exported weights and model card to {args.export}")
    return 0

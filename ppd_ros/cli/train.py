"""``ppd-ros train``: (re)train the embedded small models on synthetic data; resumable; optional export.

``Trainer``: the encoder's decoder, then the DiT (+ decoder, + edge stage). Last stage: the small MoGe-2
(metric scale + intrinsics, ``train.moge2_small``; resumable in ``<out>/moge2_small``). ``--export DIR``
writes the shipped weights and the model cards.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..train.loop import TrainConfig
    from ..train.options import add_config_options
    p = sub.add_parser("train", help="train the embedded small models on synthetic data (CPU, hours; resumable)")
    add_config_options(p, TrainConfig)
    p.add_argument("--until", type=int, default=None, help="stop at this global step (resume later)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    # --metric-steps: the old stage-3 option, kept so existing command lines still parse
    p.add_argument("--moge2-steps", "--metric-steps", dest="moge2_steps", type=int, default=1500,
                   help="steps of the small MoGe-2 (0 = skip it)")
    p.add_argument("--video-steps", type=int, default=0,
                   help="then fine-tune the small PPVD (ppd_ros.train.video) from this run's models for N steps "
                        "(0 = skip; out <out>/../ppvd_small)")
    p.add_argument("--export", default=None, help="after training, write the shipped weights + card to this folder")
    p.add_argument("--export-only", action="store_true", help="skip training: export the checkpoints of --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..train.loop import TrainConfig, Trainer
    from ..train.moge2_small import CARD_FILE, PRESET, WEIGHTS_FILE, MoGe2TrainConfig, MoGe2Trainer
    from ..train.options import config_from_args
    torch.set_num_threads(args.threads)
    cfg = config_from_args(TrainConfig, args)
    trainer = Trainer(cfg)
    if not args.export_only:
        trainer.run(args.until)
    mcfg = MoGe2TrainConfig(out=str(Path(cfg.out) / "moge2_small"), data=str(Path(cfg.out).parent / "data"),
                            seed=cfg.seed, frames=cfg.frames, height=cfg.height, width=cfg.width,
                            steps=max(args.moge2_steps, 1))
    moge2 = MoGe2Trainer(mcfg) if args.moge2_steps > 0 else None
    if moge2 is not None and not args.export_only and trainer.step >= cfg.total_steps:
        # --until counts global steps: the small MoGe-2's steps follow PPD's
        moge2.run(None if args.until is None else args.until - cfg.total_steps)
    if args.export:
        extra = {}
        if moge2 is not None and moge2.step >= mcfg.steps:
            cmd = (f"ppd-ros train --out {cfg.out} --seed {cfg.seed} --frames {cfg.frames} "
                   f"--moge2-steps {args.moge2_steps} --export {args.export}")
            moge2.export(args.export, cmd)
            extra = {"metric_model": {"card": CARD_FILE, "preset": PRESET, "file": WEIGHTS_FILE}}
        trainer.export(args.export, extra)
        print(f"exported weights and model card to {args.export}")
    if args.video_steps > 0:  # after the image export: the video card pins the image files it builds on
        _video_stage(args, cfg, trainer)
    return 0


def _video_stage(args: argparse.Namespace, cfg, trainer) -> None:
    """Small PPVD fine-tuned from the image DiT/encoder just trained (self-contained: train/video.py)."""
    from ..train.video import VIDEO_PRESET_FOR, VideoTrainConfig, VideoTrainer
    vcfg = VideoTrainConfig(out=str(Path(cfg.out).parent / "ppvd_small"), seed=cfg.seed, steps=args.video_steps,
                            dit_preset=VIDEO_PRESET_FOR[cfg.dit_preset], encoder_preset=cfg.encoder_preset)
    video = VideoTrainer(vcfg, trainer.enc, trainer.dit)  # resumes <out>/../ppvd_small/last.pt
    if not args.export_only:
        video.run()
    if args.export:
        video.export(args.export)
        print(f"exported the small PPVD to {args.export} (metrics: python bench/eval_video.py --write-card)")

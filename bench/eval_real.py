"""Honest evaluation of the embedded PPD: real frames + held-out synthetic frames, with baselines.

    .venv/bin/python bench/eval_real.py                 # table + one JSON line
    .venv/bin/python bench/eval_real.py --write-card    # also record the numbers in the model card

Rows: model (encoder + DiT + sampler through PPDPipeline), decoder (decoder-only ablation),
constant and plane (GT-fitted log-depth plane, an oracle). AbsRel/delta1/flying pixels are measured
after a per-image scale-and-shift fit of the log-depth output (see ppd_ros/train/evaluation.py).
The metric AbsRel (model row) comes from the embedded metric stage with a predicted focal,
without any alignment (Aloe has no trusted metric GT). The published fraction (every frame, Aloe
included) is the share of GT-valid pixels that the metric stage publishes as finite metres (not NaN /
+inf outside the MoGe-2 mask), with the camera's intrinsics where known (as the node gets them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="embedded model name")
    ap.add_argument("--synthetic", type=int, default=32, help="held-out synthetic frames (0 = skip)")
    ap.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model card's)")
    ap.add_argument("--write-card", action="store_true", help="store the results in the model card")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", default=None,
                    help="a training run's last.pt (e.g. runs/embedded_v2/last.pt): evaluate its DiT + decoder "
                         "instead of the shipped ones (to check that a retrain reproduces the card)")
    ap.add_argument("--dit-preset", default=None, help="with --checkpoint: the run's DiT preset (default: the card's)")
    ap.add_argument("--encoder-preset", default=None, help="with --checkpoint: the run's encoder preset (default: the card's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ppd_ros.embedded import (embedded_inference_config, load_embedded_image_pipeline, load_embedded_metric_stage,
                                  model_card, model_card_path)
    from ppd_ros.train.benchmark import (evaluate_metric, evaluate_published, evaluate_real, evaluate_synthetic_test,
                                         format_table)
    from dataclasses import replace
    cfg = embedded_inference_config(None, args.model)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    pipe = load_embedded_image_pipeline(args.model, cfg)
    if args.checkpoint:
        if args.write_card:
            ap.error("--write-card records the shipped weights only; drop --checkpoint")
        from ppd_ros.config import preset
        from ppd_ros.models.dit import DiT
        from ppd_ros.models.small_encoder import SmallSemanticEncoder
        from ppd_ros.pipelines.image import PPDPipeline
        ck = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        dit = DiT(preset(args.dit_preset)) if args.dit_preset else pipe.dit
        enc = pipe.encoder
        if args.encoder_preset:  # same tensors, another semantic grid: keep the shipped frozen backbone
            enc = SmallSemanticEncoder(preset(args.encoder_preset))
            enc.load_state_dict(pipe.encoder.state_dict())
        dit.load_state_dict(ck["dit"])
        enc.decoder.load_state_dict(ck["decoder"])
        pipe = PPDPipeline(dit, enc, cfg)
    t0 = time.perf_counter()
    real = evaluate_real(pipe)
    syn = evaluate_synthetic_test(pipe, args.synthetic) if args.synthetic else None
    stage = load_embedded_metric_stage(args.model)
    met = evaluate_metric(pipe, stage)
    published = evaluate_published(pipe, stage)
    print(format_table(real, syn, met))
    print("metric stage (focal predicted, no alignment): " + "; ".join(
        f"{n}: AbsRel {m['metric_absrel']:.3f}, scale pred/GT {m['scale_ratio']:.2f}, focal error "
        f"{100 * m['focal_rel_error']:+.0f} %" for n, m in met.items()))
    if any("metric_absrel_official_mask" in m for m in met.values()):
        print("metric AbsRel split: " + "; ".join(
            f"{n}: on the official-mask pixels {m['metric_absrel_official_mask']:.3f} (unchanged by the threshold), "
            f"on the pixels the calibrated threshold adds {m['metric_absrel_added'] or float('nan'):.3f}"
            for n, m in met.items()))
    print(f"metric stage, published fraction of GT-valid pixels (fit mask > {stage.moge.mask_threshold:g}, published "
          f"> {stage.moge.publish_threshold}): "
          + "; ".join(f"{n}: {v:.3f}" for n, v in published.items()))
    result = {"model": args.model, "steps": cfg.steps, "target_area": cfg.target_area, "real": real,
              "synthetic": syn, "metric": met,
              "published_fraction": published, "mask_threshold": stage.moge.mask_threshold,
              "publish_threshold": stage.moge.publish_threshold, "seconds": round(time.perf_counter() - t0, 1)}
    if args.write_card:
        card = model_card(args.model)
        card["metrics"] = {"real": real, "synthetic_heldout": syn, "metric_stage": met, "steps": cfg.steps,
                           "command": "python bench/eval_real.py --write-card"}
        model_card_path(args.model).write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

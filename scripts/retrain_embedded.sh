#!/usr/bin/env bash
# Retrain every embedded model from scratch (the commands of docs/embedded_models.md, "Retrain everything"), then
# re-measure and record the cards. About 2 h 30 min on 2 CPU cores; run it in the background, never
# in CI. Every stage resumes from its last.pt when the script is started again.
#   scripts/retrain_embedded.sh [RUNS_DIR] [WEIGHTS_DIR]     (defaults: runs, ppd_ros/weights)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs}
weights=${2:-ppd_ros/weights}
py=.venv/bin/python
# 1) decoder + a first, narrow DiT whose decoder run 2 starts from
"$py" -m ppd_ros.cli train --out "$runs/embedded" --dit-preset embedded_ppd_dit_v1 --dit-init none \
    --encoder-preset embedded_small_encoder --decoder-steps 700 --dit-steps 1800 --until 1350 --moge2-steps 0
# 2) the shipped DiT (pass-through init; finer cascade, 8-px semantics) jointly with run 1's decoder, then the
#    small MoGe-2 and the small PPVD
"$py" -m ppd_ros.cli train --out "$runs/embedded_p4d4" --dit-preset embedded_ppd_dit_p4d4 \
    --encoder-preset embedded_small_encoder_s8 --decoder-steps 0 --dit-steps 1500 --batch 8 \
    --lr-dit 0.0003 --init-decoder-from "$runs/embedded/last.pt" --eval-every 100 --eval-frames 32 \
    --moge2-steps 1500 --video-steps 1000 --export "$weights"
if [ "$weights" = ppd_ros/weights ]; then  # the eval scripts read the installed weights
    "$py" bench/eval_real.py --write-card
    "$py" bench/eval_video.py --write-card
fi

#!/usr/bin/env bash
# Every GPU measurement of issue 8 in ONE run on an H100/H200: full-size random-weight models,
# bf16, 512x512, 4 steps. Sized to finish in < 8 minutes; each step has its own timeout and is
# skipped when the overall budget would be exceeded. Results: one JSON line per bench in
# $OUT/results.jsonl, logs in $OUT/all.log, profiler tables in $OUT/profile_*.txt; a summary
# table is printed last.
#
#   device run:  bash bench/gpu_all.sh          (OUT is set there; timeout_s=540)
#   elsewhere:   OUT=/tmp/ppd_gpu bash bench/gpu_all.sh
#
# Missing benches of other concerns (video, metric, node, conversions) are skipped, not failed.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ppd_gpu_out}
mkdir -p "$OUT"
PY=${PY:-python3}
BUDGET_S=${BUDGET_S:-450}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RES="$OUT/results.jsonl"
LOG="$OUT/all.log"
: > "$RES"
: > "$LOG"
START=$SECONDS

step() {  # step NAME TIMEOUT_S CMD...: run with a timeout unless the budget is spent
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET_S - (SECONDS - START)))
  if (( left < 20 )); then echo "SKIP $name: budget spent" | tee -a "$LOG"; return; fi
  (( limit > left )) && limit=$left
  echo "=== $name (limit ${limit}s, t=$((SECONDS - START))s): $*" | tee -a "$LOG"
  timeout "$limit" "$@" --json-out "$RES" >> "$LOG" 2>&1
  local rc=$?
  echo "=== $name rc=$rc ($((SECONDS - START))s)" | tee -a "$LOG"
  tail -n 14 "$LOG" | grep -v '^{' || true
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nproc; } > "$OUT/env.txt" 2>&1  # nvidia-smi only reads; the card's settings are left alone
cat "$OUT/env.txt"
timeout 60 $PY bench/common.py ceilings | tee -a "$LOG" | grep '^{' >> "$RES"

# DRY=1 runs the same sequence on the CPU with tiny presets (checks this script, not the numbers).
if [[ ${DRY:-0} == 1 ]]; then
  DEV=cpu; DIT=fixture_ppd_dit_small; PDIT=fixture_ppd_e2e_dit; SEM=fixture_da2_vit_small
  H=32; W=32; BH=32; BW=48; G=""; CG=(); REP=1
else
  DEV=cuda; DIT=ppd_dit; PDIT=ppd_dit; SEM=da2_vitl; H=512; W=512; BH=768; BW=1024; G="+graph"
  CG=(--cudagraph); REP=0
fi
rep() { (( REP )) && echo 1 || echo "$1"; }
COMMON=(--device $DEV --dtype bfloat16 --height $H --width $W --steps 4)
# 1. one denoiser step: the reference (official procedure: SDPA, per-block RoPE/adaLN, bf16 autocast), each
#    speed-up, the node's default, CUDA graph, and explicit-softmax attention as a labelled extra row
step dit_step 150 $PY bench/bench_dit_step.py "${COMMON[@]}" --preset $DIT --repeat $(rep 20) --warmup 3 \
  --variants ref,rope,fmod,ln,cast,default,default$G,math --optimised default$G \
  --profile "$OUT/profile" --profile-variants ref,default,default$G
# 2. whole image pipeline (DA2 ViT-L semantics + 4 steps): reference, node default, + graph, math (extra)
step pipeline 150 $PY bench/bench_pipeline.py "${COMMON[@]}" --preset $PDIT --semantics-preset $SEM "${CG[@]}" --math \
  --repeat $(rep 10) --warmup 2
# 3. several cameras per call: batch 4 step cost (per frame = ms / 4)
step dit_step_b4 90 $PY bench/bench_dit_step.py "${COMMON[@]}" --preset $DIT --batch 4 --repeat $(rep 10) \
  --warmup 2 --variants ref,default,default$G --optimised default$G
# 4. the official default working area (1024x768): reference, default (+ graph)
step pipeline_768x1024 90 $PY bench/bench_pipeline.py --device $DEV --dtype bfloat16 --steps 4 --preset $PDIT \
  --semantics-preset $SEM --height $BH --width $BW "${CG[@]}" --repeat $(rep 5)
# 4b. the node's own default pipeline (ros.factory; embedded model) against its speedups=False reference
step pipeline_node 60 $PY bench/bench_pipeline.py --node --device $DEV --math --repeat $(rep 10) --warmup 2

# 5. torch.compile of the step, last: compile time is reported apart (first_call_ms)
if [[ ${DRY:-0} != 1 ]]; then
  step dit_step_compile 150 $PY bench/bench_dit_step.py "${COMMON[@]}" --preset $DIT --repeat 10 --warmup 2 \
    --variants ref,default+graph,default+compile+graph --optimised default+compile+graph --compile-mode default
fi

# 6. other concerns' benches, when present; only the flags each one's --help lists are passed
OTHERS=(
  "bench_video.py|--preset ppvd_dit_video --semantics-preset pi3 --device $DEV --dtype bfloat16 --height $H --width $W --steps 4"
  "bench_video_approx.py|--device $DEV --frames 24"
  "bench_metric.py|--preset moge2_vitl_normal --device $DEV --dtype bfloat16 --height $H --width $W"
  "bench_node.py|--device $DEV --frames 300 --rate 30"
  "bench_conversions.py|"
)
for entry in "${OTHERS[@]}"; do
  script=${entry%%|*}; want=(${entry#*|})
  if [[ ! -f bench/$script ]]; then echo "SKIP $script: not present" | tee -a "$LOG"; continue; fi
  if (( BUDGET_S - (SECONDS - START) < 30 )); then echo "SKIP $script: budget spent" | tee -a "$LOG"; continue; fi
  help=$($PY "bench/$script" --help 2>&1)
  args=()
  for ((i = 0; i < ${#want[@]}; i += 2)); do
    [[ ${DRY:-0} == 1 && ${want[i]} == *preset ]] && continue  # dry run: the scripts' small defaults
    grep -q -- "${want[i]}" <<< "$help" && args+=("${want[i]}" "${want[i+1]}")
  done
  grep -q -- "--json-out" <<< "$help" || { echo "NOTE $script has no --json-out; its last line is copied" >> "$LOG"; }
  if grep -q -- "--json-out" <<< "$help"; then
    step "${script%.py}" 60 $PY "bench/$script" "${args[@]}"
  else
    tmp="$OUT/.${script%.py}.log"
    timeout 60 $PY "bench/$script" "${args[@]}" > "$tmp" 2>&1; echo "=== $script rc=$?" | tee -a "$LOG"
    cat "$tmp" >> "$LOG"; grep '^{' "$tmp" | tail -n 1 >> "$RES"; rm -f "$tmp"
  fi
done

echo "=== summary ($((SECONDS - START))s) on $(head -2 "$OUT/env.txt" | tail -1)"
$PY bench/common.py summarize "$RES"

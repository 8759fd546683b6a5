#!/usr/bin/env bash
# The GPU check of issue #11, in one script for a lent GPU machine (run from the repository root):
# the CUDA tests, the latent benchmark with the Stable-Diffusion-shaped VAE in float32 and
# bfloat16, the streamed evaluation's memory and speed, and the paper dry run on CUDA
# (1 process, then one per GPU). Every figure is printed; the log goes to ${OUT:-runs}/gpu_check.log.
set -u
out="${OUT:-runs}"; mkdir -p "$out"; log="$out/gpu_check.log"
py="${PY:-.venv/bin/python}"; test -x "$py" || py=python3
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())')
step() { echo; echo "=== $* ==="; "$@"; echo "=== exit $? ==="; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
  step "$py" -m pytest -q -rs tests/test_latent_ot.py tests/test_encoders.py tests/test_gaussian.py tests/test_streaming.py -k "cuda or gpu or device"
  step "$py" benchmarks/bench_latent_ot.py --device cuda
  step "$py" benchmarks/bench_eval_memory.py --device cuda --size 64
  step "$py" -m dotlib.dryrun --device cuda --nproc 1
  if [ "$gpus" -gt 1 ]; then step "$py" -m dotlib.dryrun --device cuda --nproc "$gpus"; fi
} 2>&1 | tee "$log"

#!/usr/bin/env bash
# The GPU check, in one script for a lent GPU machine (run from the repository root): the tests
# marked `cuda`, the latent benchmark with the Stable-Diffusion-shaped VAE in float32 and bfloat16,
# the streamed evaluation's memory and speed, and the paper dry run on CUDA (1 process, then one
# per GPU). Every figure is printed; the log goes to ${OUT:-runs}/gpu_check.log.
#
# PYTHON (or PY) names the interpreter, default .venv/bin/python. It must import dotlib and the
# packages the steps use: there is no fallback to another Python. The script exits 2 when that
# check fails, 1 when any step failed (each is listed at the end), 0 when every step passed.
set -uo pipefail
out="${OUT:-runs}"; mkdir -p "$out"; log="$out/gpu_check.log"
py="${PYTHON:-${PY:-.venv/bin/python}}"
missing=$("$py" - <<'PY' 2>&1
import importlib.util
names = ("torch", "dotlib", "diffusers", "spandrel", "lpips", "cleanfid", "pytest")
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
PY
) || { echo "gpu_check: cannot run $py: $missing" >&2; exit 2; }
if [ -n "$missing" ]; then
  echo "gpu_check: $py lacks $missing; run 'make setup' here, or set PYTHON to an interpreter that has them" >&2
  exit 2
fi
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())') || exit 2
if [ "$gpus" -lt 1 ]; then echo "gpu_check: torch sees no CUDA device on this machine" >&2; exit 2; fi

exec > >(tee "$log") 2>&1
failed=()
step() {
  echo; echo "=== $* ==="
  "$@"; local status=$?
  echo "=== exit $status ==="
  [ "$status" -eq 0 ] || failed+=("$*")
}
step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
step "$py" -m pytest -q -rs -m cuda tests
step "$py" benchmarks/bench_latent_ot.py --device cuda
step "$py" benchmarks/bench_eval_memory.py --device cuda --size 64
step "$py" -m dotlib.dryrun --device cuda --nproc 1
if [ "$gpus" -gt 1 ]; then step "$py" -m dotlib.dryrun --device cuda --nproc "$gpus"; fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'gpu_check: %d step(s) failed:\n' "${#failed[@]}"; printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "gpu_check: every step passed"

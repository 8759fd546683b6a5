#!/usr/bin/env bash
# The GPU check, for a bare GPU machine (python3 with torch + CUDA and the scientific stack, no
# network): installs the wheelhouse (.whl/, `make wheelhouse`) into a scratch folder, then runs
# tools/gpu_check.py: preflight, CUDA-versus-CPU equality, throughput and memory slope of the folder
# runner at 512², and the paper dry run on CUDA. Writes $OUT/gpu_check.json and the log beside it.
#
#   PYTHON=python3 tools/gpu_check.sh              # on the GPU machine (at most 8 minutes on one H200)
#   PYTHON=<bare venv>/bin/python tools/gpu_check.sh --rehearse   # the same steps on CPU, tiny sizes
#
# PYTHON defaults to python3; WHEELHOUSE to .whl. Exit 2 when it cannot start (no interpreter,
# no pip, no wheelhouse), 1 when a step failed, 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"; wheels="${WHEELHOUSE:-.whl}"; out="${OUT:-runs/gpu_check}"
mode=(); [ "${1:-}" = "--rehearse" ] && mode=(--rehearse)
[ "$#" -le "${#mode[@]}" ] || { echo "gpu_check: usage: tools/gpu_check.sh [--rehearse]" >&2; exit 2; }
"$py" -c 'import torch' 2>/dev/null || { echo "gpu_check: $py cannot import torch; set PYTHON to the interpreter with torch" >&2; exit 2; }
[ -f "$wheels/wheels.txt" ] || { echo "gpu_check: no wheelhouse at $wheels; run 'make wheelhouse' (PY_VERSION=3.11 for a rehearsal here) and bring .whl/ along" >&2; exit 2; }
mkdir -p "$out"; log="$out/gpu_check.log"
site="${TMPDIR:-/tmp}/dotlib-gpu-site-$(id -u)"
# Only what this interpreter lacks is installed (a machine's own torchvision, say, is kept).
lacking=$("$py" - "$wheels/wheels.txt" <<'PY'
import importlib.metadata as m, sys
for line in open(sys.argv[1]):
    pin = line.strip()
    if pin and not pin.startswith("#"):
        try:
            m.version(pin.split("==")[0])
        except m.PackageNotFoundError:
            print(pin)
PY
) || exit 2
rm -rf "$site"; mkdir -p "$site"
if [ -n "$lacking" ]; then
  "$py" -m pip --version >/dev/null 2>&1 || { echo "gpu_check: $py has no pip to install the wheelhouse with" >&2; exit 2; }
  # shellcheck disable=SC2086
  "$py" -m pip install --quiet --no-index --no-deps --find-links "$wheels" --target "$site" $lacking \
    || { echo "gpu_check: installing the wheelhouse into $site failed" >&2; exit 2; }
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$py" tools/gpu_check.py "${mode[@]}" --out "$out" 2>&1 | tee "$log"

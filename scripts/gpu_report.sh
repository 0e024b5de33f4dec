#!/usr/bin/env bash
# Everything BENCHMARKS.md reports for a GPU, in one command on a machine with one:
#
#   scripts/gpu_report.sh [OUTDIR [bench.py options ...]]    # default OUTDIR: checkpoints/runs/gpu_report
#
# Writes to OUTDIR: nvidia-smi.txt (the device and driver), gpu_tests.log (pytest tests/gpu: bf16-mixed,
# channels_last, torch.compile, views on CUDA, no host-device sync in a step, a 1-GPU fit), bench.log and
# bench.json (`make bench` at the CUDA sizes, with the Markdown table) and profile_loader_*.txt (torch.profiler
# tables of the loader rows).
# PYTHON picks the interpreter (default: this repo's .venv, else python3 on PATH). Exits non-zero when a
# GPU test fails; the benchmark still runs.
set -uo pipefail

cd "$(dirname "$0")/.."
OUTDIR=checkpoints/runs/gpu_report
if [[ $# -gt 0 ]]; then OUTDIR=$1; shift; fi
PYTHON=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1

nvidia-smi > "$OUTDIR/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$OUTDIR/nvidia-smi.txt"
"$PYTHON" -m pytest -q -rs tests/gpu 2>&1 | tee "$OUTDIR/gpu_tests.log"
tests=${PIPESTATUS[0]}
"$PYTHON" scripts/bench.py --device cuda --markdown --profile --out "$OUTDIR/bench.json" "$@" 2>&1 \
    | tee "$OUTDIR/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu tests exit $tests, bench exit $bench; written to $OUTDIR"
exit $(( tests != 0 ? tests : bench ))

#!/usr/bin/env bash
# One GPU acceptance run (each check capped so the whole run stays under 8 minutes; COMFYUI adds at
# most 3.5 more): the GPU tests, the ST-Diff, 3DGS and
# per-chunk benchmarks at full size with random weights, and measured-vs-planned peak memory.
# Prints Markdown rows (paste them into docs/BENCHMARKS.md with the device name) and writes
# $OUT/acceptance.json. Without CUDA it says so and exits 0.
#
#   bash benchmarks/gpu_acceptance.sh                       # OUT=gpu_acceptance_out
#   COMFYUI=/path/to/ComfyUI bash benchmarks/gpu_acceptance.sh   # also ComfyUI's core-model paths
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "no CUDA device: the GPU acceptance checks need one; nothing was run"
    exit 0
fi
OUT=${OUT:-gpu_acceptance_out}
mkdir -p "$OUT"
DEVICE=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
echo "GPU acceptance on $DEVICE ($("$PY" -c "import torch; print(torch.__version__, torch.version.cuda)"))"
echo
echo "| check | device | status | seconds | log |"
echo "| --- | --- | --- | --- | --- |"
ROWS=()
run() {  # run NAME LIMIT_S COMMAND...: one row, the log in $OUT/NAME.log
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$? status=ok
    [ $rc -eq 124 ] && status="timed out (${limit} s)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed (exit $rc)"
    echo "| $name | $DEVICE | $status | $((SECONDS - t0)) | $OUT/$name.log |"
    ROWS+=("{\"check\": \"$name\", \"status\": \"$status\", \"seconds\": $((SECONDS - t0))}")
}
run gpu-tests 60 "$PY" -m pytest -q tests/test_gscache.py tests/test_core_models.py -k "cuda or gpu or gsplat or bf16"
run plan-vs-measured 90 "$PY" benchmarks/plan_chunk.py --measure "$OUT/plan_vs_measured.json"
run bench_stdiff 75 "$PY" benchmarks/bench_stdiff.py
run bench_stdiff-low-vram 75 "$PY" benchmarks/bench_stdiff.py --low-vram
run bench_gscache 45 "$PY" benchmarks/bench_gscache.py --gpu-iterations 500
run bench_table4 135 "$PY" benchmarks/bench_table4.py --out "$OUT/table4"
if [ -n "${COMFYUI:-}" ]; then
    run bench_core_stdiff 120 "$PY" benchmarks/bench_core_stdiff.py --comfy "$COMFYUI"
    run bench_core_stdiff-fp8-lowvram 90 "$PY" benchmarks/bench_core_stdiff.py --comfy "$COMFYUI" --paths core \
        --weight-dtype fp8_e4m3fn -- --lowvram
else
    echo "| bench_core_stdiff | $DEVICE | skipped: set COMFYUI=/path/to/ComfyUI | - | - |"
fi
echo
for f in "$OUT"/plan-vs-measured.log "$OUT"/bench_*.log; do
    [ -f "$f" ] && { echo "### $(basename "$f" .log)"; grep '^|' "$f" || tail -n 5 "$f"; echo; }
done
{
    echo "{\"device\": \"$DEVICE\", \"checks\": ["
    (IFS=,; echo "${ROWS[*]}")
    echo "]}"
} >"$OUT/acceptance.json"
echo "wrote $OUT/acceptance.json"

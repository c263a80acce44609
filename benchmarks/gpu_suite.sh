#!/usr/bin/env bash
# The GPU figures in benchmarks/RESULTS.md, in one go: `evalfast bench` on CUDA against sentence-transformers,
# the pipeline breakdown (tokenising, model alone, end to end), the GPU tests, and exact search on the GPU.
#
#   benchmarks/gpu_suite.sh EXPORT_DIR LOG_DIR
#
# Needs onnxruntime-gpu, faiss-cpu, torch with CUDA and sentence-transformers importable (evalfast itself may
# come from the checkout: PYTHONPATH=.), and all-MiniLM-L6-v2's export in EXPORT_DIR. Each step has its own time
# limit, so one slow step cannot take the others' time; logs and JSON go to LOG_DIR and are packed into
# LOG_DIR/gpu-suite.tar.gz at the end. STEPS="bench pipeline" runs only those steps.
set -u
export_dir=$1
logs=$2
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 EVALFAST_TEST_MINILM_EXPORT=$export_dir

step() {
    local name=$1 limit=$2
    shift 2
    [[ " ${STEPS:-bench pipeline tests search} " == *" $name "* ]] || return 0
    echo "== $name: $*"
    local began=$SECONDS
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - began)) s"
    tail -n "${TAIL:-20}" "$logs/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv >"$logs/gpu.txt" 2>&1
cat "$logs/gpu.txt"
step bench 240 python3 -m evalfast bench -m "$export_dir" --golden data/golden/handwritten --device cuda \
    --precision fp32,fp16 --n 50000 --repeats 3 --output-dir "$logs"
step pipeline 200 python3 benchmarks/bench_pipeline.py --export "$export_dir" --device cuda --precision fp16 \
    --n 200000 --repeats 2 --threads 1 --processes 2,4,8 --runners 1,2 --json "$logs/pipeline.json"
TAIL=8 step tests 180 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
step search 150 python3 benchmarks/bench_search.py --device cuda --peers evalfast,faiss --results-dir "$logs"
tar -czf "$logs/gpu-suite.tar.gz" -C "$logs" --exclude gpu-suite.tar.gz .

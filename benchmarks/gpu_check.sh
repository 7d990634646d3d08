#!/usr/bin/env bash
# The CUDA checks, in one run on a machine with an NVIDIA GPU and PyTorch installed:
#   1. the CUDA tests: the Triton kernel against the PyTorch path, forward and backward,
#      fp32 and bf16 (compiled for the GPU, not interpreted), and bf16 generation;
#   2. the Triton kernel timed against the PyTorch path at the model's shapes;
#   3. the generation and training benchmarks on the GPU (fp32, and bf16 generation).
# Each part writes its output to one file in OUT_DIR (default: $OUT, else gpu_check/);
# a part that fails is reported and the others still run. Total: a few minutes on an H200.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -u -o pipefail
out="${1:-${OUT:-gpu_check}}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
python=${PYTHON:-python3}
status=0

part() {  # part NAME COMMAND...: run COMMAND, its output to $out/NAME.txt
    local name=$1
    shift
    echo "== $name: $*"
    if ! "$@" >"$out/$name.txt" 2>&1; then
        echo "   FAILED (see $out/$name.txt)"
        status=1
    fi
    tail -n 30 "$out/$name.txt"
}

part machine bash -c "nvidia-smi; $python -c 'import torch, triton; print(torch.__version__, \
triton.__version__, torch.cuda.get_device_name())'"
part tests "$python" -m pytest -q -p no:cacheprovider tests/test_triton_kernel.py \
    "tests/test_generation.py::test_bfloat16_generation"
part topk_query "$python" benchmarks/topk_query.py --dtype float32
part topk_query_bf16 "$python" benchmarks/topk_query.py --dtype bfloat16
part generate "$python" benchmarks/generate.py --device cuda --backbone densenet121
part generate_bf16 "$python" benchmarks/generate.py --device cuda --dtype bfloat16 --backbone densenet121
part train "$python" benchmarks/train.py --device cuda --steps 10
exit $status

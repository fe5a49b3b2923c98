#!/usr/bin/env bash
# The device checks of this project in one command, for a CUDA machine (see README, "On a GPU").
#
#   bash experiments/gpu/run_all.sh            # from the repository root
#
# Runs, each under its own time limit (about 8.5 minutes in all):
#   1. pytest -m cuda                                   (every CUDA test of the suite)
#   2. experiments/bench_bandwidth.py --device cuda     (200 x 1e5 and 1e6 float32: HALS / MU iterations
#                                                        against bytes of X read / measured bandwidth)
#   3. experiments/bench_batched.py --device cuda       (100 replicates of a 200 x 100 rank-5 problem:
#                                                        one batched fit against a loop of single fits;
#                                                        to scikit-learn's errors where it is installed)
#   4. experiments/bench_small.py --quick --device cuda (200 x 100 and 60 x 30: time to 1.01 x the best error)
# and writes their JSON (each with the device name) and the test log under RESULTS (default
# experiments/results/gpu/, or $OUT/gpu when $OUT is set, as on the device machine of this workplace).
# tensorly is needed by the CP tests: where it is not installed, wheels in .whl/ are installed into
# /tmp/site first (python3 -m pip download --no-deps --only-binary=:all: -d .whl tensorly).
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULTS=${RESULTS:-${OUT:+$OUT/gpu}}
RESULTS=${RESULTS:-experiments/results/gpu}
mkdir -p "$RESULTS"
if ! python3 -c "import tensorly" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
python3 - <<'PY' | tee "$RESULTS/device.txt"
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print(torch.cuda.get_device_name(), "torch", torch.__version__, "cuda", torch.version.cuda)
PY
status=0
run() {  # run LIMIT NAME COMMAND...: one step under a time limit, its log in RESULTS
    local limit=$1 name=$2; shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "== $name exited $rc"; status=1; }
}
run 180 pytest_cuda python3 -m pytest -q -m cuda -p no:cacheprovider tests
run 120 bench_bandwidth python3 experiments/bench_bandwidth.py --device cuda --n 100000 1000000 --iterations 5
run 150 bench_batched python3 experiments/bench_batched.py --device cuda --no-same-error-loops --repeats 2
run 60 bench_small python3 experiments/bench_small.py --quick --device cuda --no-peers
for name in bench_bandwidth_cuda bench_batched_cuda bench_small_cuda; do
    [ -f "experiments/results/$name.json" ] && cp "experiments/results/$name.json" "$RESULTS/"
done
exit $status

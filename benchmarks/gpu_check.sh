#!/usr/bin/env bash
# One prepared GPU check for a fresh NVIDIA machine (H100/H200, no internet):
#   1. install carried wheels from .whl/, if any (the device image lacks only pydicom: carry it);
#   2. build and install the package with SFRT_CUDA=ON for the device's architecture;
#   3. run the tests that exercise a GPU backend (every test parametrised over cuda or cupy, the
#      gpu marker, the forward/adjoint operators), in parallel with pytest-xdist when it is there,
#      with the GPU backends required (a skipped cuda or cupy backend fails: SFRT_REQUIRE_CUDA=1);
#      SFRT_GPU_CHECK_ALL_TESTS=1 runs the whole suite instead;
#   4. run the GPU benchmarks and parity record (benchmarks/gpu_bench.py: dose cases, RT Plan
#      recompute, a whole optimisation, the full sfrt compare), and the dose operators' forward +
#      adjoint iteration (benchmarks/compare_backends.py --cases op-sarcoma op-water100);
#   5. the roofline of the dose cases (benchmarks/compare_backends.py: work model, device and host peaks);
#   6. sweep the launch shape of the dose kernels (benchmarks/gpu_profile.py --sweep; SFRT_GPU_CHECK_SWEEP=0 skips).
# Every step has its own time limit, and the logs go to $OUT as they are written, so a run cut short
# still brings back what it did.
# Results: benchmarks/results/gpu-<device>-<date>.json (and copies under $OUT when set).
#
#   bash benchmarks/gpu_check.sh            # everything
#   SFRT_GPU_CHECK_QUICK=1 bash ...         # fewer repeats, no 256^3 case (dry runs)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out_dir=${OUT:-$root/benchmarks/results}
mkdir -p "$out_dir" benchmarks/results
log() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }

source benchmarks/gpu_build.sh || exit 1
json="benchmarks/results/gpu-${device}-${date_tag}.json"

log "tests with GPU backends required"
select=(-k "cuda or cupy or gpu")
[ "${SFRT_GPU_CHECK_ALL_TESTS:-0}" = 1 ] && select=()
parallel=()
python3 -c "import xdist" 2>/dev/null && parallel=(-n "${SFRT_GPU_CHECK_WORKERS:-8}")
cd /tmp
# numpy and cupy on the device may be newer than CI's: their deprecation warnings are reported, not errors
SFRT_REQUIRE_CUDA=1 timeout "${SFRT_GPU_CHECK_TEST_TIMEOUT:-180}" python3 -m pytest "$root/tests" -q -p no:cacheprovider \
  "${select[@]}" "${parallel[@]}" -p no:benchmark -W default::DeprecationWarning -W default::FutureWarning \
  --junitxml="$out_dir/gpu-tests.xml" -o addopts="--strict-markers --import-mode=importlib" 2>&1 \
  | tee "$out_dir/gpu-tests.log" | tail -40
tests_rc=${PIPESTATUS[0]}
cd "$root"

log "benchmarks"
cases=(sarcoma_5beam slab256_9beam vmat_180cp impt_3field rtplan_recompute optimise_crt compare)
repeat=${SFRT_GPU_CHECK_REPEAT:-3}
if [ "${SFRT_GPU_CHECK_QUICK:-0}" = 1 ]; then cases=(sarcoma_5beam impt_3field optimise_crt); repeat=1; fi
PYTHONUNBUFFERED=1 timeout "${SFRT_GPU_CHECK_BENCH_TIMEOUT:-260}" python3 benchmarks/gpu_bench.py \
  --backends cuda cupy cpp --cases "${cases[@]}" --repeat "$repeat" --out "$json" 2>&1 | tee "$out_dir/gpu-bench.log"
bench_rc=${PIPESTATUS[0]}
log "dose operators: forward + adjoint per iteration (target: <= 20 ms on the default case)"
PYTHONUNBUFFERED=1 timeout 90 python3 benchmarks/compare_backends.py --cases op-sarcoma op-water100 --backends cuda cupy cpp --repeat "$repeat" \
  --json-out "benchmarks/results/gpu-operators-${device}-${date_tag}.json" 2>&1 | grep -v '^BENCH' | tail -20
[ "${PIPESTATUS[0]}" = 0 ] || bench_rc=1
[ "$out_dir" != "$root/benchmarks/results" ] && cp "benchmarks/results/gpu-operators-${device}-${date_tag}.json" "$out_dir/"
log "roofline: counted work, achieved GFLOP/s against the device's and the host's peaks, 1 vs all cores"
PYTHONUNBUFFERED=1 timeout 150 python3 benchmarks/compare_backends.py --cases sarcoma water100 --backends cuda cupy cpp \
  --repeat "$repeat" --json-out "$out_dir/gpu-roofline.json" 2>&1 | grep -v '^BENCH' | tee "$out_dir/gpu-roofline.log" | tail -40
if [ "${SFRT_GPU_CHECK_SWEEP:-1}" = 1 ]; then
  log "launch-shape sweep (csrc/README.md, Launch configuration)"
  for b in cuda cupy; do
    PYTHONUNBUFFERED=1 timeout 120 python3 benchmarks/gpu_profile.py --backend "$b" --sweep \
      --cases sarcoma_5beam slab256_9beam vmat_36cp impt_3field op_sarcoma 2>&1 | grep SWEEP
  done | tee "$out_dir/gpu-sweep.log"
fi
[ -f "$json" ] && python3 - "$json" "$tests_rc" <<'PY'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
data = json.load(open(path))
data["test_suite_exit_code"] = rc
json.dump(data, open(path, "w"), indent=2)
PY
[ "$out_dir" != "$root/benchmarks/results" ] && cp "$json" "$out_dir/"
log "tests rc=${tests_rc}, benchmarks rc=${bench_rc}; results in ${json}"
exit $(( tests_rc != 0 || bench_rc != 0 ))

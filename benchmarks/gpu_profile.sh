#!/usr/bin/env bash
# Where the GPU time goes, in one device run (after gpu_check.sh): builds as gpu_check.sh does, then
#   1. registers, shared and local memory (spills) per kernel (cuobjdump --dump-resource-usage);
#   2. the host-side breakdown of one warm call per case (benchmarks/gpu_profile.py --host-profile);
#   3. Nsight Compute on the warm call of each case: speed of light, occupancy and launch statistics,
#      summarised per kernel (clocks left alone: --clock-control none).
# Output goes to $OUT (or benchmarks/results/profile/): resources.txt, host.txt, ncu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out_dir=${OUT:-$root/benchmarks/results/profile}
mkdir -p "$out_dir"
log() { echo "[gpu_profile $(date +%H:%M:%S)] $*"; }
source benchmarks/gpu_build.sh || exit 1
backend=${SFRT_PROFILE_BACKEND:-cuda}
so=$(cd /tmp && python3 -c "import sfrt_engine.kernels._cuda as m; print(m.__file__)")
log "kernel resources of ${so}"
cuobjdump --dump-resource-usage "$so" 2>&1 | grep -E "Function|REG" | sed 's/^[[:space:]]*//' > "$out_dir/resources.txt"
cat "$out_dir/resources.txt"
log "host-side breakdown (${backend})"
PYTHONUNBUFFERED=1 timeout "${SFRT_PROFILE_HOST_TIMEOUT:-150}" python3 benchmarks/gpu_profile.py --backend "$backend" \
  --host-profile 2>&1 | tee "$out_dir/host.txt"
log "Nsight Compute (${backend})"
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
PYTHONUNBUFFERED=1 timeout "${SFRT_PROFILE_NCU_TIMEOUT:-240}" "$ncu" --clock-control none --profile-from-start off \
  --section SpeedOfLight --section Occupancy --section LaunchStats --print-summary per-kernel \
  python3 benchmarks/gpu_profile.py --backend "$backend" ${SFRT_PROFILE_CASES:+--cases $SFRT_PROFILE_CASES} \
  > "$out_dir/ncu.txt" 2>&1
log "ncu rc=$?"
grep -E "CASE|sfrt_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy" \
  "$out_dir/ncu.txt" | head -150

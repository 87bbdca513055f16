# Sourced by the GPU scripts (gpu_check.sh, gpu_profile.sh) from the repository root, with log() defined:
# installs carried wheels (.whl/), finds the device (sets device, arch, date_tag) and builds and installs
# the package with SFRT_CUDA=ON for the device's architecture.
if ls .whl/*.whl >/dev/null 2>&1; then
  log "installing carried wheels"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

arch=90
if command -v nvidia-smi >/dev/null 2>&1; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
  [ -n "$cc" ] && arch=$cc
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
else
  device=cpu
fi
date_tag=$(date +%Y-%m-%d)
log "device ${device}, building for sm_${arch}"

export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
SFRT_CUDA=ON SFRT_CUDA_ARCHITECTURES="${arch}" python3 -m pip install --no-build-isolation --no-deps -q \
  -Cbuild-dir=build/gpu -Ccmake.define.SFRT_CUDA_ARCHITECTURES="${arch}" . 2>&1 | tail -5 || return 1
(cd /tmp && python3 -c "import sfrt_engine as se; print(se.available_backends())")

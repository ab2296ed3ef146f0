#!/usr/bin/env bash
# Installs the Debian 12 packages bls needs, only those missing (idempotent).  Needs root for
# apt-get; without root it lists what is missing and fails.
set -euo pipefail
packages=(
  build-essential cmake clang pkg-config
  libomp-dev                    # OpenMP for the clang build (gcc has libgomp)
  libclang-rt-14-dev            # libFuzzer and the clang sanitizer runtimes (make fuzz)
  openmpi-bin libopenmpi-dev    # the default MPI
  mpich libmpich-dev            # the second MPI the tests run against
  valgrind
  libopenblas-dev libcjson-dev  # bls-engine-bench's sgemm limit; the engine's safetensors headers
  python3-matplotlib python3-numpy  # bench plots (/usr/bin/python3)
  python3-torch python3-sklearn     # the engine's oracle tests and metric cross-checks
  libtorch-dev python3-dev pybind11-dev  # torch_bls, the PyTorch backend (C++ headers)
  iproute2 util-linux           # scripts/cluster.sh: ip netns, tc; unshare, nsenter, setpriv
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null

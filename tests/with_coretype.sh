#!/usr/bin/env bash
# Runs a command with OpenBLAS forced to one of its x86-64 kernels, as on a CPU where OpenBLAS
# picks that kernel itself (Debian's OpenBLAS carries them all).  Exit 77 (ctest: skipped) when
# this CPU lacks the instructions the kernel needs: OpenBLAS would run them anyway and die.
# The normal test stages never set OPENBLAS_CORETYPE: they run with the environment's own.
# Usage: with_coretype.sh CORETYPE COMMAND...
set -euo pipefail
coretype=$1
shift
case $coretype in
  Prescott) need="pni" ;;
  Sandybridge) need="avx" ;;
  Haswell | Zen) need="avx2 fma" ;;
  SkylakeX) need="avx512f avx512bw avx512vl avx512dq" ;;
  Cooperlake) need="avx512f avx512bw avx512vl avx512dq avx512_bf16" ;;
  *) echo "with_coretype: no instruction list for '$coretype'" >&2; exit 2 ;;
esac
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
for f in $need; do
  if [[ $flags != *" $f "* ]]; then
    echo "SKIP: OPENBLAS_CORETYPE=$coretype needs '$f', which this CPU lacks"
    exit 77
  fi
done
export OPENBLAS_CORETYPE=$coretype
exec "$@"

# Sourced by the PyTorch driver's scripts (test_driver.sh, test_schedule.sh) with their
# arguments BLS_DLRM PYTHON_DIR OUT_DIR MPIEXEC [LAUNCHER FLAGS...]: sets tool, pydir, out,
# mpiexec, flags, here and root; skips (77) without Debian's torch; empties OUT; the checks of
# ../checks.sh; and `driver NP ARGS...`, the driver on NP processes.
tool=$1 pydir=$2 out=$3 mpiexec=$4
shift 4
flags=("$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/../..
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no torch"; exit 77; }
rm -rf "$out"; mkdir -p "$out"
source "$here/../checks.sh"
driver() {  # through run.sh: a free port, PYTHONPATH, the sanitizer preload if any
  local np=$1; shift
  "$here/run.sh" "$pydir" "$np" "$mpiexec" "${flags[@]}" -- "$root/torch_bls/dlrm_infer.py" --quiet "$@"
}

#!/usr/bin/env bash
# Installs the build into a temporary prefix and uses it as a user would, from outside the
# source tree: the files and their SONAMEs, only public API exported, the tools' --version from
# the prefix, examples/pipelined.c built against the installed library with pkg-config and with
# find_package(bls) and run under mpirun, torch_bls imported from the prefix running a 2-process
# all_to_all_single, the installed PyTorch driver; then uninstall leaves no file behind.
# Usage: test_install.sh BUILD_DIR OUT_DIR TORCH(1|0) pydir=PYTHON_DIR MPIEXEC [LAUNCHER FLAGS...]
set -uo pipefail
build=$(cd "$1" && pwd) out=$2 torch=$3 pydir=${4#pydir=} mpiexec=$5
shift 5
flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
source "$here/../checks.sh"
rm -rf "$out"; mkdir -p "$out"; out=$(cd "$out" && pwd)
prefix=$out/prefix
cd "$out"  # nothing below runs from the source or build tree
version=$(sed -n 's/^#define BLS_VERSION_STRING "\(.*\)"$/\1/p' "$src/libbls/include/bls.h")
[ -n "$version" ] && ok || bad "no BLS_VERSION_STRING in bls.h"
unset LD_LIBRARY_PATH
mpirun() { timeout --kill-after=5 120 "$mpiexec" -n "$1" "${flags[@]}" "${@:2}"; }
# How often a pattern occurs in a file: the launcher may join two ranks' lines into one.
count() { grep -o -- "$1" "$2" | wc -l; }
# No `cmd | grep -q` below: under pipefail, grep leaving early fails the writer (SIGPIPE).

# ---- install ----
cmake --install "$build" --prefix "$prefix" > install.log 2>&1 || { bad "cmake --install: $(tail -3 install.log)"; verdict install; exit 1; }
for f in include/bls/bls.h include/bls/dlrm.h include/bls/dlrm_dist.h include/bls/harness.h \
         lib/cmake/bls/blsConfig.cmake lib/cmake/bls/blsConfigVersion.cmake lib/pkgconfig/bls.pc \
         lib/pkgconfig/bls-dlrm.pc lib/pkgconfig/bls-harness.pc lib/pkgconfig/bls-dist.pc \
         bin/bls-dlrm bin/bls-bench bin/bls-gather-bench bin/bls-engine-bench bin/bls-convert-checkpoint \
         share/doc/bls/examples/pipelined.c; do
  [ -e "$prefix/$f" ] && ok || bad "not installed: $f"
done
# Each library: versioned file, SONAME lib<name>.so.MAJOR, exports only its header's prefix.
major=${version%%.*}
for lib in bls:bls_ bls_dlrm:dlrm_ bls_harness:harness_ bls_dist:dist_; do
  name=${lib%%:*} api=${lib#*:}
  so=$prefix/lib/lib$name.so.$version
  [ -f "$so" ] || { bad "not installed: lib/lib$name.so.$version"; continue; }
  soname=$(readelf -d "$so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "lib$name.so.$major" ] && ok || bad "lib$name: SONAME '$soname', expected lib$name.so.$major"
  [ "$(readlink "$prefix/lib/lib$name.so")" = "lib$name.so.$major" ] && ok || bad "lib$name.so is not a link to lib$name.so.$major"
  extra=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v "^$api" | head -5 | tr '\n' ' ')
  [ -z "$extra" ] && ok || bad "lib$name exports symbols outside its API ($api*): $extra"
  dyn=$(readelf -d "$so")
  grep -q "RUNPATH.*$build" <<< "$dyn" && bad "lib$name's RUNPATH names the build tree" || ok
done
# The tools run from the prefix, on the prefix's libraries, and say the project's version.
for t in bls-dlrm bls-bench bls-gather-bench bls-engine-bench; do
  deps=$(ldd "$prefix/bin/$t")
  grep -qF "libbls.so.$major => $prefix/bin/../lib/" <<< "$deps" && ok || bad "$t does not load libbls from the prefix: $(grep libbls <<< "$deps")"
  v=$(mpirun 1 "$prefix/bin/$t" --version 2>&1)
  grep -q "^$t (bls) $version\$" <<< "$v" && grep -q "^libbls $version, compiled for .*; MPI library: " <<< "$v" \
    && ok || bad "$t --version: $v"
done

# ---- pkg-config: a plain compiler, MPI through bls.pc's Requires ----
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion bls)" = "$version" ] && ok || bad "pkg-config --modversion bls: $(pkg-config --modversion bls 2>&1)"
ex=$prefix/share/doc/bls/examples/pipelined.c
if cc -Wall -Werror -o pipelined_pc "$ex" $(pkg-config --cflags --libs bls) \
     -Wl,-rpath,"$(pkg-config --variable=libdir bls)" > pc.log 2>&1; then
  ok
  mpirun 2 ./pipelined_pc > pc.out 2>&1 && [ "$(count 'checksum \([0-9]*\), expected \1\b' pc.out)" = 2 ] \
    && ok || bad "pipelined (pkg-config) under mpirun: $(tail -3 pc.out)"
else
  bad "cc with pkg-config bls: $(tail -5 pc.log)"
fi
# The distributed layer's flags bring the engine's, the harness's and cJSON's.
pkg-config --cflags --libs bls-dist > /dev/null 2>&1 && ok || bad "pkg-config bls-dist: $(pkg-config --libs bls-dist 2>&1)"

# ---- find_package(bls): imported targets, MPI found as the build found it ----
mkdir -p consumer
cat > consumer/CMakeLists.txt <<CM
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(bls $version REQUIRED)
foreach(t bls::bls bls::dlrm bls::harness bls::dist)
  if(NOT TARGET \${t})
    message(FATAL_ERROR "find_package(bls) did not define \${t}")
  endif()
endforeach()
add_executable(pipelined $ex)
target_link_libraries(pipelined PRIVATE bls::bls)
add_executable(versions versions.c)
target_link_libraries(versions PRIVATE bls::dist)
CM
cat > consumer/versions.c <<'C'
/* The installed headers of every library compile together; header and library agree. */
#include <dlrm_dist.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    int major = -1, minor = -1, patch = -1;
    const char *v = bls_version(&major, &minor, &patch);
    printf("%s %d.%d.%d %s\n", v, major, minor, patch, dlrm_strerror(DLRM_OK));
    return strcmp(v, BLS_VERSION_STRING) || major != BLS_VERSION_MAJOR || minor != BLS_VERSION_MINOR ||
           patch != BLS_VERSION_PATCH;
}
C
if cmake -S consumer -B consumer/build -DCMAKE_PREFIX_PATH="$prefix" > cmake.log 2>&1 \
   && cmake --build consumer/build >> cmake.log 2>&1; then
  ok
  mpirun 2 consumer/build/pipelined > fp.out 2>&1 && [ "$(count 'checksum \([0-9]*\), expected \1\b' fp.out)" = 2 ] \
    && ok || bad "pipelined (find_package) under mpirun: $(tail -3 fp.out)"
  consumer/build/versions > versions.out 2>&1 && grep -q "^$version $version " versions.out && ok \
    || bad "header and library versions: $(cat versions.out)"
else
  bad "find_package(bls) consumer: $(grep -E 'Error|error' -A3 cmake.log | head -8)"
fi
# A version the prefix does not have is refused.
sed -i "s/find_package(bls $version REQUIRED)/find_package(bls 99.0 REQUIRED)/" consumer/CMakeLists.txt
cmake -S consumer -B consumer/build99 -DCMAKE_PREFIX_PATH="$prefix" > cmake99.log 2>&1 \
  && bad "find_package(bls 99.0) succeeded" || { grep -q "99.0" cmake99.log && ok || bad "find_package(bls 99.0): $(tail -3 cmake99.log)"; }

# ---- the Python package, from the prefix ----
if [ "$torch" = 1 ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  site=$prefix/$pydir
  cat > a2a.py <<'PY'
import os, sys
import torch, torch.distributed as dist
import torch_bls
assert torch_bls.__file__.startswith(sys.argv[1]), f"torch_bls from {torch_bls.__file__}, not the prefix"
assert torch_bls.__version__ == sys.argv[2], torch_bls.__version__
dist.init_process_group(backend="bls")
r, P = dist.get_rank(), dist.get_world_size()
for it in range(5):  # uneven splits: p sends (p + q + it) % 3 + 1 values to q
    send = [(r + q + it) % 3 + 1 for q in range(P)]
    recv = [(p + r + it) % 3 + 1 for p in range(P)]
    x = torch.cat([torch.full((n,), 1000 * it + 10 * r + q, dtype=torch.int64) for q, n in enumerate(send)])
    y = torch.empty(sum(recv), dtype=torch.int64)
    dist.all_to_all_single(y, x, recv, send)
    want = torch.cat([torch.full((n,), 1000 * it + 10 * p + r, dtype=torch.int64) for p, n in enumerate(recv)])
    assert torch.equal(y, want), (it, y, want)
print(f"rank {r}: all_to_all_single exact, torch_bls {torch_bls.__version__} from the prefix")
dist.destroy_process_group()
PY
  port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$(port) PYTHONPATH=$site mpirun 2 /usr/bin/python3 a2a.py "$site" "$version" > py.out 2>&1 \
    && [ "$(count 'all_to_all_single exact' py.out)" = 2 ] && ok || bad "installed torch_bls: $(tail -5 py.out)"
  v=$("$prefix/bin/bls-dlrm-torch" --version 2>&1)
  [ "$v" = "dlrm_infer (bls) $version" ] && ok || bad "bls-dlrm-torch --version: $v"
  v=$("$prefix/bin/bls-convert-checkpoint" --version 2>&1)
  [ "$v" = "convert_checkpoint (bls) $version" ] && ok || bad "bls-convert-checkpoint --version: $v"
  # The installed driver (no PYTHONPATH: the command finds its package), bls and gloo alike.
  model=(--arch-mlp-bot 13-16-8 --arch-mlp-top 16-1 --arch-embedding-size 50-60-70 --arch-sparse-feature-size 8
         --synthetic-samples 400 --batch-size 50 --quiet)
  for be in bls gloo; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$(port) mpirun 2 "$prefix/bin/bls-dlrm-torch" "${model[@]}" \
      --dist-backend $be --predictions "pred_$be.txt" > "torch_$be.out" 2>&1 || bad "bls-dlrm-torch $be: $(tail -3 "torch_$be.out")"
  done
  [ -s pred_bls.txt ] && [ "$(wc -l < pred_bls.txt)" = 400 ] && cmp -s pred_bls.txt pred_gloo.txt && ok \
    || bad "bls-dlrm-torch: bls and gloo predictions differ or are missing ($(wc -l < pred_bls.txt 2>/dev/null) lines)"
else
  echo "note: torch_bls not built or no torch in /usr/bin/python3: the Python package is not checked"
fi

# ---- uninstall: every file gone, and the project's own directories ----
cmake --build "$build" --target uninstall > uninstall.log 2>&1 || bad "uninstall: $(tail -3 uninstall.log)"
left=$(find "$prefix" -not -type d | head -5)
[ -z "$left" ] && ok || bad "left after uninstall: $left"
for d in include/bls lib/cmake/bls share/doc/bls "$pydir/torch_bls"; do
  [ ! -e "$prefix/$d" ] && ok || bad "left after uninstall: directory $d"
done
verdict install

#!/usr/bin/env bash
# A cluster on one machine: N "hosts", each a network namespace with its own hostname (UTS
# namespace), joined by a bridge that lives in a namespace of its own, so nothing of it touches
# the machine's own network.  MPI launches across them the way clusters launch, through an
# rsh-style agent (Open MPI's plm_rsh_agent, Hydra's -launcher-exec) that enters the host's
# namespaces instead of ssh-ing to it.  Shared memory within a host, TCP between hosts.
#
#   scripts/cluster.sh up N [--slots S]     create hosts h0..h(N-1) (idempotent; N hosts of S slots)
#   scripts/cluster.sh down                 remove everything up made (and stop jitter)
#   scripts/cluster.sh status               the hosts, their addresses and shaping
#   scripts/cluster.sh exec H CMD...        run CMD on host H (0..N-1) as root
#   scripts/cluster.sh mpirun [--mpi openmpi|mpich] MPIEXEC-ARGS...
#                                           mpiexec from host 0 with the cluster's hostfile and
#                                           network flags, e.g. mpirun -np 8 build/bench/bls-bench
#   scripts/cluster.sh shape H|all RATE [--burst BYTES] [--queue-ms MS]
#                                           token-bucket (tc tbf) on host H's link, both ways:
#                                           RATE as tc takes it (100mbit, 1gbit), a queue of MS ms
#   scripts/cluster.sh unshape H|all        remove the shaping
#   scripts/cluster.sh jitter --seed S [--hosts LIST] [--rate R] [--slow-rate R]
#                         [--period-ms MS] [--slow-share F] [--queue-ms MS] [--log FILE]
#                                           in the background: every MS ms each listed host's link
#                                           is slow (R -> slow R) with probability F, from a
#                                           seeded generator (the same seed, the same schedule;
#                                           the schedule is logged; a queue of MS ms, default
#                                           20, as shape's); `jitter stop` ends it
#   scripts/cluster.sh agent HOST CMD...    the launcher agent itself (what MPI calls)
#   scripts/cluster.sh check | probe        every host there? | can namespaces be made here?
#
# Environment: BLS_CLUSTER (name, default bls-cluster: namespace prefix and state directory
# /run/NAME), BLS_CLUSTER_SUBNET (the first three octets, default 10.231.0; hosts at .11, .12...).
# Needs root, iproute2 (ip netns, tc) and util-linux (unshare, nsenter).
set -euo pipefail

name=${BLS_CLUSTER:-bls-cluster}
subnet=${BLS_CLUSTER_SUBNET:-10.231.0}
state=/run/$name
self=$(readlink -f "$0")

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

ns_of() { echo "$name-h$1"; }        # network namespace of host i
sw_ns() { echo "$name-sw"; }         # the switch's namespace
ip_of() { echo "$subnet.$((11 + $1))"; }
hostname_of() { echo "$name-h$1"; }
nhosts() { [[ -f $state/hosts ]] && cat "$state/hosts" || echo 0; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run as root"
  command -v ip >/dev/null || die "needs iproute2's ip (apt-get install iproute2)"
  command -v nsenter >/dev/null || die "needs util-linux's nsenter and unshare"
}

# Can this machine make namespaces at all?  (Containers without CAP_SYS_ADMIN cannot.)
probe() {
  local t="$name-probe$$"
  ip netns add "$t" 2>/dev/null || return 1
  ip netns del "$t"
}

host_index() {  # accepts 3, h3, NAME-h3, or the host's address
  local h=$1 n i
  n=$(nhosts)
  for ((i = 0; i < n; i++)); do
    if [[ $h == "$i" || $h == "h$i" || $h == "$(hostname_of "$i")" || $h == "$(ip_of "$i")" ]]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

in_host() {  # in_host I CMD...: run in host I's network and UTS namespaces
  local i=$1
  shift
  nsenter --net="/run/netns/$(ns_of "$i")" --uts="$state/uts/h$i" -- "$@"
}

cmd_down() {
  need_root
  cmd_jitter_stop quiet
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-(h[0-9]+|sw)$" || true); do
    ip netns del "$ns"
  done
  if [[ -d $state/uts ]]; then
    local f
    for f in "$state"/uts/*; do
      [[ -e $f ]] || continue
      umount "$f" 2>/dev/null || true
      rm -f "$f"
    done
  fi
  rm -rf "$state"
}

cmd_up() {
  need_root
  local n=${1:-}
  shift || true
  local slots=2
  while [[ $# -gt 0 ]]; do
    case $1 in
      --slots) slots=${2:?--slots needs a number}; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 200 ]] || die "up: N must be 1..200, got '${n}'"
  [[ $slots =~ ^[0-9]+$ && $slots -ge 1 ]] || die "up: --slots must be a positive number, got '$slots'"
  if [[ -f $state/hosts && $(cat "$state/hosts") == "$n" && -f $state/slots &&
        $(cat "$state/slots") == "$slots" ]] && cmd_check quiet; then
    echo "cluster $name: $n hosts already up"
    return 0
  fi
  cmd_down
  probe || die "cannot create network namespaces here (needs CAP_SYS_ADMIN; 'ip netns add' failed)"
  mkdir -p "$state/uts"
  echo "$n" > "$state/hosts"
  echo "$slots" > "$state/slots"
  trap 'echo "cluster.sh: up failed; cleaning up" >&2; cmd_down' ERR
  local sw
  sw=$(sw_ns)
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  local i ns
  for ((i = 0; i < n; i++)); do
    ns=$(ns_of "$i")
    ip netns add "$ns"
    # Both ends are made inside their namespaces: names need only be unique there.
    ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$sw"
    ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$sw" link set "p$i" master br0
    ip -n "$sw" link set "p$i" up
    touch "$state/uts/h$i"
    unshare --uts="$state/uts/h$i" hostname "$(hostname_of "$i")"
  done
  # The launcher agent, and hostfiles for both launchers (addresses, so nothing needs DNS).
  cat > "$state/agent" <<EOF
#!/bin/sh
# Launcher agent of cluster $name: called as 'agent [-x] HOST CMD...' by mpiexec in place of ssh.
BLS_CLUSTER=$name BLS_CLUSTER_SUBNET=$subnet exec $self agent "\$@"
EOF
  chmod +x "$state/agent"
  : > "$state/hostfile.openmpi"
  : > "$state/hostfile.mpich"
  for ((i = 0; i < n; i++)); do
    echo "$(ip_of "$i") slots=$slots" >> "$state/hostfile.openmpi"
    echo "$(ip_of "$i"):$slots" >> "$state/hostfile.mpich"
  done
  trap - ERR
  # Wait until every host reaches every other (the bridge learns in a moment).
  for ((i = 1; i < n; i++)); do
    local tries=0
    until reaches 0 "$(ip_of "$i")"; do
      tries=$((tries + 1))
      [[ $tries -lt 10 ]] || { cmd_down; die "up: host 0 cannot reach host $i"; }
    done
  done
  echo "cluster $name: $n hosts up ($subnet.11-$(ip_of $((n - 1))), $slots slots each); hostfiles in $state"
}

# Host I reaches ADDR when a TCP connection to a closed port there is refused (no ping here).
reaches() {
  local out
  out=$(in_host "$1" timeout 2 bash -c "echo > /dev/tcp/$2/9" 2>&1) && return 0
  [[ $out == *refused* ]]
}

cmd_check() {  # every piece there?
  local n i
  n=$(nhosts)
  [[ $n -ge 1 ]] || return 1
  ip netns list | grep -q "^$(sw_ns)\b" || return 1
  for ((i = 0; i < n; i++)); do
    ip netns list | grep -q "^$(ns_of "$i")\b" || return 1
    [[ $(in_host "$i" hostname 2>/dev/null) == "$(hostname_of "$i")" ]] || return 1
  done
  [[ ${1:-} == quiet ]] || echo "cluster $name: $n hosts, all present"
}

cmd_status() {
  local n i
  n=$(nhosts)
  if [[ $n -eq 0 ]]; then
    echo "cluster $name: down"
    return 0
  fi
  echo "cluster $name: $n hosts, $(cat "$state/slots") slots each, state in $state"
  for ((i = 0; i < n; i++)); do
    printf '  h%-3d %-15s %-20s %s\n' "$i" "$(ip_of "$i")" "$(in_host "$i" hostname)" \
      "$(tc -n "$(ns_of "$i")" qdisc show dev eth0 | head -1)"
  done
  if [[ -f $state/jitter.pid ]] && kill -0 "$(cat "$state/jitter.pid")" 2>/dev/null; then
    echo "  jitter running (pid $(cat "$state/jitter.pid"))"
  fi
}

cmd_exec() {
  local h=${1:?exec needs a host}
  shift
  local i
  i=$(host_index "$h") || die "exec: no host '$h' in cluster $name ($(nhosts) hosts)"
  in_host "$i" "$@"
}

# What mpiexec calls instead of ssh: [-x] HOST CMD...  (ssh joins CMD's words for the remote
# shell; so do we).
cmd_agent() {
  while [[ ${1:-} == -* ]]; do shift; done
  local h=${1:?agent needs a host}
  shift
  local i
  i=$(host_index "$h") || die "agent: no host '$h' in cluster $name"
  in_host "$i" /bin/sh -c "$*"
}

cmd_mpirun() {
  local mpi=openmpi
  if [[ ${1:-} == --mpi ]]; then
    mpi=${2:?--mpi needs openmpi or mpich}
    shift 2
  fi
  [[ $(nhosts) -ge 1 ]] || die "mpirun: cluster $name is down (scripts/cluster.sh up N)"
  case $mpi in
    openmpi)
      # Defaults as environment (the agent passes mpiexec's environment on), so that an --mca
      # on the command line overrides them.  Open MPI believes each host's slots are cores;
      # here all hosts share this machine's, so unless they really are enough it must yield
      # when idle (oversubscribed), as it does by itself when it knows it is oversubscribed.
      local yield=0
      (($(nhosts) * $(cat "$state/slots") > $(nproc))) && yield=1
      in_host 0 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        OMPI_MCA_plm_rsh_agent="$state/agent" OMPI_MCA_btl="${OMPI_MCA_btl:-self,vader,tcp}" \
        OMPI_MCA_btl_tcp_if_include="$subnet.0/24" OMPI_MCA_oob_tcp_if_include="$subnet.0/24" \
        OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-$yield}" \
        mpiexec.openmpi --hostfile "$state/hostfile.openmpi" "$@"
      ;;
    mpich)
      # UCX (MPICH's transport here) decides that two processes share a machine from this
      # machine's identity, which namespaces share: its shared-memory and cma transports would
      # carry the traffic between "hosts" and bypass their links.  So UCX gets TCP only; within
      # a host MPICH's own shared memory (it knows the host from the hostfile) still serves.
      # UCX_TLS from the environment overrides.
      in_host 0 env UCX_TLS="${UCX_TLS:-self,tcp}" mpiexec.mpich -f "$state/hostfile.mpich" -launcher rsh \
        -launcher-exec "$state/agent" -iface eth0 "$@"
      ;;
    *) die "mpirun: --mpi must be openmpi or mpich, got '$mpi'" ;;
  esac
}

tbf() {  # tbf NETNS DEV RATE BURST QUEUE_MS
  tc -n "$1" qdisc replace dev "$2" root tbf rate "$3" burst "$4" latency "${5}ms"
}

hosts_of() {  # hosts_of all|I|LIST -> indices
  local spec=$1 n i
  n=$(nhosts)
  if [[ $spec == all ]]; then
    seq 0 $((n - 1))
    return
  fi
  local IFS=,
  for h in $spec; do
    i=$(host_index "$h") || die "no host '$h' in cluster $name ($n hosts)"
    echo "$i"
  done
}

cmd_shape() {
  local spec=${1:?shape needs a host (or all)} rate=${2:?shape needs a rate, e.g. 1gbit}
  shift 2
  local burst=65536 queue=20
  while [[ $# -gt 0 ]]; do
    case $1 in
      --burst) burst=${2:?}; shift 2 ;;
      --queue-ms) queue=${2:?}; shift 2 ;;
      *) die "shape: unknown option '$1'" ;;
    esac
  done
  local i
  for i in $(hosts_of "$spec"); do
    # Out of the host (its eth0) and into it (the switch's port towards it).
    tbf "$(ns_of "$i")" eth0 "$rate" "$burst" "$queue" || die "shape: tc refused rate '$rate'"
    tbf "$(sw_ns)" "p$i" "$rate" "$burst" "$queue"
  done
}

cmd_unshape() {
  local spec=${1:?unshape needs a host (or all)} i
  for i in $(hosts_of "$spec"); do
    tc -n "$(ns_of "$i")" qdisc del dev eth0 root 2>/dev/null || true
    tc -n "$(sw_ns)" qdisc del dev "p$i" root 2>/dev/null || true
  done
}

cmd_jitter_stop() {
  if [[ -f $state/jitter.pid ]]; then
    local pid t
    pid=$(cat "$state/jitter.pid")
    kill "$pid" 2>/dev/null || true
    # Gone (or a zombie) before we return: it handles TERM after its current sleep.
    for t in $(seq 30); do
      [[ -e /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$state/jitter.pid"
    [[ ${1:-} == quiet ]] || echo "jitter stopped"
  fi
}

# Time-varying shaping.  A 31-bit LCG (the C library's constants) seeded with S gives, for
# every period and listed host in turn, a draw u in [0,1): the host's link is slow for that
# period when u < F.  The same seed replays the same schedule; each change is logged with the
# time since the start.
cmd_jitter() {
  if [[ ${1:-} == stop ]]; then
    cmd_jitter_stop
    return
  fi
  local seed='' spec=all rate=1gbit slow=50mbit period=200 share=0.2 log=$state/jitter.log queue=20
  while [[ $# -gt 0 ]]; do
    case $1 in
      --seed) seed=${2:?}; shift 2 ;;
      --hosts) spec=${2:?}; shift 2 ;;
      --rate) rate=${2:?}; shift 2 ;;
      --slow-rate) slow=${2:?}; shift 2 ;;
      --period-ms) period=${2:?}; shift 2 ;;
      --slow-share) share=${2:?}; shift 2 ;;
      --log) log=${2:?}; shift 2 ;;
      --queue-ms) queue=${2:?}; shift 2 ;;
      *) die "jitter: unknown option '$1'" ;;
    esac
  done
  [[ $seed =~ ^[0-9]+$ ]] || die "jitter: --seed must be a non-negative integer"
  [[ $period =~ ^[0-9]+$ && $period -ge 10 ]] || die "jitter: --period-ms must be >= 10"
  [[ $share =~ ^(0(\.[0-9]+)?|1(\.0*)?)$ ]] || die "jitter: --slow-share must be in [0,1], got '$share'"
  [[ $(nhosts) -ge 1 ]] || die "jitter: cluster $name is down"
  cmd_jitter_stop quiet
  local hosts threshold
  hosts=$(hosts_of "$spec" | tr '\n' ' ')
  threshold=$(awk -v f="$share" 'BEGIN { printf "%d", f * 2147483648 }')
  [[ $queue =~ ^[0-9]+$ && $queue -ge 1 ]] || die "jitter: --queue-ms must be a positive integer"
  cmd_shape "$spec" "$rate" --queue-ms "$queue"
  (
    trap 'exit 0' TERM
    x=$seed
    declare -A cur
    start=$(date +%s%N)
    echo "# jitter seed $seed hosts $hosts period ${period}ms rate $rate slow $slow share $share queue ${queue}ms" > "$log"
    while :; do
      for i in $hosts; do
        x=$(((x * 1103515245 + 12345) % 2147483648))
        if ((x < threshold)); then want=$slow; else want=$rate; fi
        if [[ ${cur[$i]:-$rate} != "$want" ]]; then
          tbf "$(ns_of "$i")" eth0 "$want" 65536 "$queue"
          tbf "$(sw_ns)" "p$i" "$want" 65536 "$queue"
          cur[$i]=$want
          echo "$((($(date +%s%N) - start) / 1000000)) h$i $want" >> "$log"
        fi
      done
      sleep "$(awk -v p="$period" 'BEGIN { printf "%.3f", p / 1000 }')"
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! > "$state/jitter.pid"
  echo "jitter running (pid $!), schedule in $log"
}

cmd=${1:-}
shift || true
case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down; echo "cluster $name: down" ;;
  status) cmd_status ;;
  check) need_root; cmd_check ;;
  exec) need_root; cmd_exec "$@" ;;
  agent) cmd_agent "$@" ;;
  mpirun) need_root; cmd_mpirun "$@" ;;
  shape) need_root; cmd_shape "$@" ;;
  unshape) need_root; cmd_unshape "$@" ;;
  jitter) need_root; cmd_jitter "$@" ;;
  probe) need_root; probe && echo "network namespaces: available" ;;
  -h | --help | help) usage ;;
  '') usage >&2; exit 2 ;;
  *) die "unknown command '$cmd' (see --help)" ;;
esac

#!/usr/bin/env bash
# Runs a command that must FAIL: non-zero exit within LIMIT seconds (no hang) and output
# matching REGEX (extended).  Usage: expect_failure.sh LIMIT REGEX COMMAND...
set -u
limit=$1 regex=$2
shift 2
start=$SECONDS
out=$(timeout --kill-after=5 "$limit" "$@" 2>&1)
rc=$?
elapsed=$((SECONDS - start))
printf '%s\n' "$out" | tail -n 30
if [ "$elapsed" -ge "$limit" ]; then
  echo "expect_failure: still running after ${limit}s (a hang)"; echo "0 passed, 1 failed"; exit 1
fi
if [ "$rc" -eq 0 ]; then
  echo "expect_failure: the command succeeded but had to fail"; echo "0 passed, 1 failed"; exit 1
fi
# MPICH's launcher reports "PID n RUNNING AT host": accept it when n is the pid the program
# announced for the rank the regex names ("rank R is pid n").
pid=$(printf '%s' "$out" | sed -n 's/.*PID \([0-9][0-9]*\) RUNNING AT.*/\1/p' | head -n 1)
rank=$(printf '%s' "$regex" | sed -n 's/.*) \([0-9][0-9]*\).*/\1/p')
if [ -n "$pid" ] && printf '%s' "$out" | grep -q "rank $rank is pid $pid\$"; then
  out="$out
(launcher's PID $pid is rank $rank)"
fi
if ! printf '%s' "$out" | grep -Eq -- "$regex"; then
  echo "expect_failure: output does not match /$regex/"; echo "0 passed, 1 failed"; exit 1
fi
echo "expect_failure: failed as required (exit $rc) and named /$regex/"
echo "1 passed, 0 failed"

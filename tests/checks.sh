# Sourced by the test scripts: checks counted, then one verdict.
#   ok                   a check passed
#   bad WHAT...          a check failed: says what
#   verdict NAME         prints the counts; its status is the test's (0 when nothing failed)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
verdict() { echo "$1: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; }

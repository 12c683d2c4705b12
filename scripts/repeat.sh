#!/usr/bin/env bash
# Run the given tests N times in a row and report how many runs passed: the
# by-hand stress loops (CI runs each test once).
#   scripts/repeat.sh 10 tests/kafka/test_kafka_scale.py::test_broker_restart_under_a_cpu_burner_loses_nothing
set -u
n=$1; shift
cd "$(dirname "$0")/.."
logs=$(mktemp -d /tmp/repeat.XXXXXX)
passed=0
for i in $(seq 1 "$n"); do
  if .venv/bin/python -m pytest -q -p no:warnings -p no:cacheprovider "$@" > "$logs/run-$i.log" 2>&1; then
    passed=$((passed + 1)); echo "run $i: passed"
  else
    echo "run $i: FAILED (log: $logs/run-$i.log)"
  fi
done
echo "$passed of $n runs passed: $*"
[ "$passed" -eq "$n" ]

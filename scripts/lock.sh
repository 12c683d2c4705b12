#!/usr/bin/env bash
# Write requirements.lock from a virtualenv that passed the suite: every package
# installed in it (direct and transitive, pip included) at its exact version.
#
#   scripts/lock.sh [VENV]      (default .venv-latest; scripts/test.sh --latest calls it when green)
#
# Why pip constraints, not uv or pip-tools: pip comes with every Python venv, so
# a fresh machine needs no other tool to install the tested set, and
# `pip install -c requirements.lock -e .` works the same for the README's main
# command, the test script, CI and the Dockerfile. The lock is for Linux x86_64
# and CPython 3.11, where the suite ran; pyproject.toml keeps the ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-latest}
[ -x "$VENV/bin/python" ] || { echo "Error: no virtualenv at $VENV" >&2; exit 2; }
{
    echo "# The exact dependency set the whole suite passed with (pip constraints)."
    echo "# Written by scripts/lock.sh from $(basename "$VENV") on $(date -u +%Y-%m-%d),"
    echo "# $("$VENV/bin/python" -c 'import platform, sys; print(f"CPython {platform.python_version()} on {sys.platform} {platform.machine()}")')."
    echo "# Install with: pip install -c requirements.lock -e '.[test]'"
    echo "# Refresh with: scripts/test.sh --latest (rewrites this file only when the suite passes)."
    # setuptools and wheel are build tools a venv may carry at any version: the
    # editable build takes its own (pyproject.toml's build-system) in isolation.
    "$VENV/bin/python" -m pip freeze --all --exclude-editable | grep -viE '^(setuptools|wheel)==' | LC_ALL=C sort -f
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "wrote requirements.lock ($(grep -c '==' requirements.lock) packages)" >&2

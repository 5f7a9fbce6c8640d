#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it; a full run
# (no arguments) then runs the non-browser tests again in .venv-min, on the
# lowest versions pyproject.toml allows (constraints/minimum.txt).
#   bash scripts/test.sh [pytest args...]
# System packages (Debian): chromium for the browser tests, a colour-emoji
# font for the test that emoji are drawn in colour, redis-server for the Redis
# backend's tests (each starts its own on a free port), npm to fetch axe-core
# for the accessibility test. Python packages, all of them wheels, go into
# ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fc-list 2>/dev/null | grep -q "Noto Color Emoji" || need+=(fonts-noto-color-emoji)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to install ${need[*]} (or install them yourself)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing quartchat with its test and lint tools"
.venv/bin/python -m pip install -q -e '.[dev]'
# axe-core, the accessibility checker tests/browser/test_axe.py runs in the
# page: one file from the npm registry, kept in .test-tools/ (gitignored).
axe_version=4.14.1
if ! grep -qs "\"version\": \"$axe_version\"" .test-tools/node_modules/axe-core/package.json; then
  echo "== installing axe-core $axe_version into .test-tools"
  npm install -s --prefix .test-tools --no-save --no-audit --no-fund "axe-core@$axe_version"
fi

echo "== ruff"
.venv/bin/ruff check quartchat tests scripts
.venv/bin/ruff format --check quartchat tests scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
if [ "$status" -ne 0 ] || [ $# -gt 0 ]; then
  exit "$status"
fi

# The oldest versions pyproject.toml allows must work too: a floor set too
# low only shows up on a machine that happens to have that old version.
if [ ! -x .venv-min/bin/python ]; then
  echo "== creating .venv-min"
  python3 -m venv .venv-min
fi
echo "== installing quartchat with the lowest allowed versions (constraints/minimum.txt)"
.venv-min/bin/python -m pip install -q -c constraints/minimum.txt -e '.[test,redis]'
echo "== pytest on the lowest allowed versions (no browser)"
exec .venv-min/bin/python -m pytest -m "not browser" -q -p no:cacheprovider

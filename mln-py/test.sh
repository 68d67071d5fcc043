#!/usr/bin/env bash
# Build the mln wheel, install it in a fresh virtualenv, run the pytest
# suite, mypy over the stubs and the tests, and stubtest (stubs against the
# module as built).
#
# Usage: mln-py/test.sh [PYTEST-ARGS...]
# Environment: PYTHON (default python3), MLN_PY_RELEASE (set: test a
# release build instead of a debug one), MLN_PY_VENV (default
# target/pyenv), CARGO_TARGET_DIR (default target/mln-py), all relative to
# the repository root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

python="${PYTHON:-python3}"
venv="${MLN_PY_VENV:-$root/target/pyenv}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/mln-py}"
wheels="$root/target/wheels"

# A virtualenv with pip. Debian's python3 without python3-venv has no
# ensurepip: make the virtualenv bare and bootstrap pip from its wheel.
make_venv() {
    if [ -z "${MLN_PY_BARE_VENV:-}" ] && "$python" -m venv "$venv" 2>/dev/null; then
        return
    fi
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    local tmp
    tmp="$(mktemp -d)"
    "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --dest "$tmp" pip
    local wheel=("$tmp"/pip-*.whl)
    "$venv/bin/python" "${wheel[0]}/pip" install --quiet --no-index "${wheel[0]}"
    rm -rf "$tmp"
}
if [ ! -x "$venv/bin/pip" ]; then
    make_venv
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    'maturin>=1.9.4,<2' pytest mypy

rm -f "$wheels"/mln-*.whl
# The tests run against a debug build (about half the build time of a
# release one on 2 cores); MLN_PY_RELEASE=1 tests the release build.
profile=(--profile dev)
if [ -n "${MLN_PY_RELEASE:-}" ]; then
    profile=(--release)
fi
"$venv/bin/maturin" build "${profile[@]}" --quiet -m "$here/Cargo.toml" -o "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall \
    --no-deps "$wheels"/mln-*.whl

# The stubs match the installed module, and the tests type-check
# against them.
(cd "$here/tests" && "$venv/bin/mypy" --strict . ../mln.pyi)
(cd "$here" && "$venv/bin/python" -m mypy.stubtest --ignore-disjoint-bases \
    --allowlist stubtest-allowlist.txt mln)

cd "$here/tests"
exec "$venv/bin/pytest" -q "$@"

#!/usr/bin/env bash
# Shows that mln-core without its `xen` feature (its default) needs neither
# libclang nor libxen-dev: it builds and its tests link with libclang and
# pkg-config made unfindable, nothing of bindgen or xenlight-sys is in its
# dependency graph, and its test binary does not load libxenlight. Also
# shows that xenlight-sys itself runs bindgen only with its `bindgen`
# feature. Exit status 0 when all of that holds.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-no-bindgen: $*" >&2; exit 1; }

# What a Xen build pulls in; none of it may appear without the feature.
xen_crates='^(xenlight-sys|bindgen|clang-sys|pkg-config) '
deps() { cargo tree -q --prefix none -e normal,build --target all "$@" | sort -u; }

deps -p mln-core --features xen | grep -Eq "$xen_crates" ||
  fail "cargo tree shows no xenlight-sys even with --features xen; this check is broken"
if deps -p mln-core | grep -E "$xen_crates"; then
  fail "mln-core with default features depends on the crates above"
fi
if deps -p xenlight-sys | grep -E '^(bindgen|clang-sys) '; then
  fail "xenlight-sys without its bindgen feature depends on the crates above"
fi
deps -p xenlight-sys --features bindgen | grep -Eq '^bindgen ' ||
  fail "cargo tree shows no bindgen for xenlight-sys --features bindgen; this check is broken"

# A target folder of its own, so nothing built with Xen is reused.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/check-no-bindgen"
export LIBCLANG_PATH=/nonexistent PKG_CONFIG=/nonexistent/pkg-config
export PKG_CONFIG_PATH=/nonexistent PKG_CONFIG_LIBDIR=/nonexistent
test_exe=$(cargo test -q -p mln-core --lib --no-run --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "mln_core" \
            and msg.get("executable"):
        print(msg["executable"])
')
[ -x "$test_exe" ] || fail "cargo built no test executable for mln-core"
if readelf -d "$test_exe" | grep -E 'NEEDED.*(xenlight|xlutil|xentoollog|yajl)'; then
  fail "$test_exe loads the libraries above"
fi
echo "check-no-bindgen: mln-core builds without libclang, pkg-config or libxenlight; xenlight-sys runs bindgen only with its feature"

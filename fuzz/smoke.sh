#!/usr/bin/env bash
# Fuzz smoke test for CI: build every fuzz target and run each for a short
# fixed time, starting from the committed corpus. Any crash, panic, hang
# (an input taking over 5 s) or memory blow-up (over 2 GiB) fails the run;
# the input that caused it is left in fuzz/artifacts/TARGET/ and the
# command to reproduce it is printed.
#
# Usage: fuzz/smoke.sh [SECONDS_PER_TARGET]   (default 30)
#
# Needs network access once, to install cargo-fuzz. Runs on the stable
# toolchain through RUSTC_BOOTSTRAP (libFuzzer needs unstable flags).
# Builds without AddressSanitizer: mln-lang has no `unsafe` code, so the
# sanitizer would only slow the build and the runs down; overflow checks
# and debug assertions stay on.
set -euo pipefail

seconds="${1:-30}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

export RUSTC_BOOTSTRAP=1
# Apart from the workspace's target folder, so a fuzz build never waits for
# (or invalidates) the normal build.
export CARGO_TARGET_DIR="$root/target/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# 16 codegen units instead of cargo-fuzz's 1: the build takes about half
# the time, and a smoke run of seconds does not need the last bit of speed.
build=(--sanitizer none --codegen-units 16)
cargo fuzz build "${build[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One target's run: new inputs go to the scratch folder; the committed
# corpus is only read.
fuzz_one() {
    local target="$1"
    mkdir -p "$scratch/$target"
    cargo fuzz run "${build[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" \
        -max_len=65536 \
        -timeout=5 \
        -rss_limit_mb=2048 \
        -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1
}

# The targets run side by side (each is one process on one core), so the
# step takes about SECONDS, not SECONDS per target.
mapfile -t targets < <(cargo fuzz list)
declare -A pids
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    fuzz_one "$target" &
    pids[$target]=$!
done
failed=0
for target in "${targets[@]}"; do
    if ! wait "${pids[$target]}"; then
        tail -n 60 "$scratch/$target.log" >&2
        echo "fuzz target $target found a problem; the input is in fuzz/artifacts/$target/" >&2
        echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build[*]} $target fuzz/artifacts/$target/FILE" >&2
        failed=1
        continue
    fi
    echo "== $target"
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' \
        "$scratch/$target.log" || true
done
[ "$failed" = 0 ] || exit 1
echo "fuzz smoke: ${#targets[@]} targets, no findings"

#!/usr/bin/env bash
# Run every fuzz target for a fixed time (libFuzzer through cargo-fuzz).
#
#   fuzz/run.sh                   60 s per target (what CI runs)
#   FUZZ_SECONDS=3600 fuzz/run.sh one hour per target (before a release)
#   fuzz/run.sh decode redact     only these targets
#
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them. New inputs go to fuzz/corpus/<target> (not versioned); the seeds in
# fuzz/seeds/<target> are read-only. A crash leaves its input in fuzz/artifacts/<target>
# and fails the script.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(connect decode redact rules differential)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "=== fuzz $target for ${seconds}s"
    cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1
done

#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from its checked-in seed corpus; new inputs go to a
# scratch corpus, so the checked-in one only changes when someone copies a finding there on purpose.
# A crash or an oracle violation prints the fuzzer's whole report and fails.
#   bash tests/fuzz/run.sh BUILD_DIR [SECONDS]
set -uo pipefail
build=$(cd "${1:?usage: run.sh BUILD_DIR [SECONDS]}" && pwd)
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
for target in fuzz_deliver fuzz_options fuzz_audit_line fuzz_cluster_batch fuzz_snapshot_file; do
  mkdir -p "$scratch/$target"
  echo "--- $target for ${seconds}s"
  if (cd "$scratch" && "$build/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 "$scratch/$target" "$here/corpus/$target") > "$scratch/$target.log" 2>&1; then
    grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::new_units_added)" "$scratch/$target.log" || tail -n 5 "$scratch/$target.log"
  else
    cat "$scratch/$target.log"
    failed=1
  fi
done
exit $failed

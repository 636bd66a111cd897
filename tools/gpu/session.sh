#!/usr/bin/env bash
# One GPU session's device run, in priority order, inside a fixed budget (the lent machine gives minutes):
#   1. the gpu-labelled test binaries (full output, so a step cut off by its limit shows the test it was in);
#   2. the samples with --backend cuda --json;
#   3. the benchmarks on the CUDA backend, sized to fit, the per-message cost diagnostics first (their JSON documents go to bench.log: the device
#      tool brings back only a handful of files);
#   4. compute-sanitizer memcheck, racecheck and synccheck over the smaller test binaries;
#   5. bench_scale at 10^6 actors, while time is left.
# Every step runs under its own limit, cut to what is left of BUDGET_S; no step starts once the budget is
# spent, and logs are appended as they are written, so a run cut short still brings back what it did.
# Made for a folder staged by ../shared/gpu/stage.sh from a Release sm_90 build (README: "Testing on a GPU"). The
# targets it runs (build only these: a whole build takes ~15 min on 2 cores, and the stage must stay under
# 64 MiB, so strip it):
#   ringkernel.test.{runtime,lifetime,hardening}_cuda ringkernel.test.{cuda_fault,snapshot_cuda,audit_cuda,copy_cuda}
#   pingpong pipeline tenants worker_pool order_book
#   bench_device_primitives bench_k2k_phases bench_traffic bench_k2k_latency bench_host_round_trip
#   bench_k2k_throughput bench_pingpong bench_scale
#   usage: [BUDGET_S=380] [SKIP_TESTS=1] [SKIP_SANITIZER=1] LOG_DIR=<folder> bash tools/gpu/session.sh STAGE
set -uo pipefail
stage=$(cd "${1:?usage: session.sh STAGE}" && pwd)
out=${LOG_DIR:?LOG_DIR must name a folder for the logs}
mkdir -p "$out"
budget=${BUDGET_S:-380}
export LD_LIBRARY_PATH="$stage/lib:${LD_LIBRARY_PATH:-}"
started=$SECONDS
failed=0

note() { printf '%s\n' "$*" | tee -a "$out/summary.txt"; }
# step LIMIT LOG LABEL COMMAND...: runs COMMAND for at most LIMIT seconds (less if the budget ends first).
step() {
  local limit=$1 log=$2 label=$3; shift 3
  local left=$((budget - (SECONDS - started)))
  if ((left < 5)); then note "skip   $label (budget of ${budget}s spent)"; return 0; fi
  ((limit > left)) && limit=$left
  printf '\n===== %s (limit %ss)\n' "$label" "$limit" >>"$out/$log"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >>"$out/$log" 2>&1
  local rc=$?
  local how="rc=$rc"; ((rc == 124 || rc == 137)) && how="TIMEOUT after ${limit}s"
  note "$(printf '%-9s %-58s %s (%ds)' "${log%.log}" "$label" "$how" $((SECONDS - t0)))"
  return $rc
}
# bench LIMIT NAME ARGS...: a benchmark; its JSON document lands in bench.log after the step's header.
bench() {
  local limit=$1 name=$2; shift 2
  step "$limit" bench.log "$name $*" "$stage/bench/$name" "$@"
}

: >"$out/summary.txt"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  nvidia-smi -q | grep -iE 'compute mode|mig mode' | head -4; nproc; } 2>&1 | tee "$out/gpu.txt"
note "budget ${budget}s"

t="$stage/tests"
if [[ ${SKIP_TESTS:-0} != 1 ]]; then
  step 110 tests.log runtime_cuda "$t/test_runtime_cuda" || failed=1
  step 60 tests.log hardening_cuda "$t/test_hardening_cuda" || failed=1
  step 45 tests.log lifetime_cuda "$t/test_lifetime_cuda" || failed=1
  for small in cuda_fault snapshot_cuda audit_cuda copy_cuda; do
    step 20 tests.log "$small" "$t/test_$small" || failed=1
  done
fi
for s in pingpong pipeline tenants worker_pool order_book; do
  step 20 samples.log "$s --backend cuda --json" "$stage/samples/$s" --backend cuda --json || failed=1
done
# First the two diagnostics of the per-message cost: what each kind of memory operation costs here, and
# where a scheduled worker's cycles go per handled message.
bench 20 bench_device_primitives --json
bench 20 bench_k2k_phases --json --repetitions 1 --hops 20000
bench 60 bench_traffic --json --backend cuda --repetitions 3 --round-trips 50000 --messages 500000
bench 30 bench_k2k_latency --json
bench 30 bench_host_round_trip --json
bench 40 bench_k2k_throughput --json
# The pool lever: 8 scheduled single-thread blocks per SM instead of 1 (1,056 on 132 SMs), many actors.
bench 40 bench_k2k_throughput --json --repetitions 2 --window-ms 100 --scheduled-workers 1056 --max-actors 4096
bench 20 bench_pingpong --json --backend cuda
if [[ ${SKIP_SANITIZER:-0} != 1 ]] && command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do
    for small in audit_cuda copy_cuda snapshot_cuda cuda_fault; do
      step 30 sanitizer.log "$tool $small" \
        compute-sanitizer --tool "$tool" --error-exitcode 99 "$t/test_$small" --gtest_brief=1 || failed=1
    done
  done
fi
# Last: at 10^6 actors the GPU run of 2026-12-04 did not finish within 100 s (bench/RESULTS.md).
# The aggregator's mailbox holds every answer: the fan-in then measures answers, not members deferring on
# a full mailbox (the storm that kept the 2026-12-04 run from finishing; deferred_calls counts it).
bench 100 bench_scale --json --actors 1000000 --idle-seconds 1 --wakeups 100 --ring-hops 100000 --phase-timeout 30 --aggregator-slots 1048576
note "done in $((SECONDS - started))s; failed=$failed"
exit $failed

#!/bin/sh
# check_refusals.sh PROGRAM ARGS...: each ARGS (one word holding a whole command line, split on spaces)
# must make PROGRAM exit with status 2 and print its usage line on stderr (tools/cli/rk_cli.hpp's
# contract for bad input), before anything runs. Used by the samples' and benchmarks' ctests.
program=$1
shift
status=0
for args in "$@"; do
  # shellcheck disable=SC2086 # the words of one command line, split on purpose
  err=$("$program" $args 2>&1 >/dev/null)
  rc=$?
  if [ $rc -ne 2 ]; then
    echo "$(basename "$program") $args: exited $rc, expected 2"
    status=1
  elif ! printf '%s\n' "$err" | grep -q '^usage: '; then
    echo "$(basename "$program") $args: no usage line on stderr: $err"
    status=1
  fi
done
exit $status

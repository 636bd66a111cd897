#!/usr/bin/env python3
"""Runs the pipeline sample with --trace and checks the file as a trace viewer would read it (Chrome trace
event format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):
every event has the fields its phase needs, every track is named, every async wait closes after it opens,
each stage's handler calls come from the stage before it, and every handled event of every stage is there
(or counted as dropped). Usage: check_chrome_trace.py <pipeline executable> <work dir>."""
import json
import os
import subprocess
import sys

exe, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
path = os.path.join(work, "pipeline_trace.json")
events = 200
run = subprocess.run([exe, "--events", str(events), "--json", "--trace", path], capture_output=True, text=True,
                     timeout=120)
if run.returncode != 0:
    sys.exit(f"pipeline exited {run.returncode}: {run.stderr}")
summary = json.loads(run.stdout.strip().splitlines()[-1])
stats = summary["trace"]

with open(path) as f:
    doc = json.load(f)
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

trace = doc["traceEvents"]
check(isinstance(trace, list), "traceEvents is not a list")
check(doc["otherData"]["collected"] == stats["collected"], "otherData.collected differs from the sample's stats")
threads = {}
opened, closed = {}, {}
calls = []
for e in trace:
    ph = e.get("ph")
    check(isinstance(e.get("pid"), int) and isinstance(e.get("tid"), int), f"pid/tid missing: {e}")
    if ph == "M":
        if e["name"] == "thread_name":
            threads[e["tid"]] = e["args"]["name"]
    elif ph == "X":
        for key in ("name", "cat", "ts", "dur", "args"):
            check(key in e, f"X event without {key}: {e}")
        check(e["ts"] >= 0 and e["dur"] >= 0, f"negative time: {e}")
        calls.append(e)
    elif ph in ("b", "e"):
        for key in ("name", "cat", "id", "ts"):
            check(key in e, f"{ph} event without {key}: {e}")
        (opened if ph == "b" else closed)[e["id"]] = e["ts"]
    else:
        check(False, f"unknown phase {ph}")

for tid in {e["tid"] for e in trace}:
    check(tid in threads, f"track {tid} has no thread_name")
check(opened.keys() == closed.keys(), "async waits without a matching end")
for span_id, begin in opened.items():
    check(closed.get(span_id, begin) >= begin, f"wait {span_id} ends before it begins")

stage_ids = {}
for tid, name in threads.items():
    for k in range(1, 5):
        if name.startswith(f"actor 's{k}' (id "):
            stage_ids[k] = tid - 1
check(len(stage_ids) == 4, f"the four stages are not all named: {threads}")
handled = {k: 0 for k in stage_ids}
for e in calls:
    check(e["name"] == "event", f"a call of message type {e['name']!r}, expected 'event'")
    stage = next((k for k, i in stage_ids.items() if i == e["args"]["actor"]), None)
    check(stage is not None, f"a call on an unknown actor: {e}")
    if stage is None:
        continue
    expected_source = "host" if stage == 1 else str(stage_ids[stage - 1])
    check(e["args"]["source"] == expected_source, f"stage {stage} called from {e['args']['source']}")
    if e["args"]["outcome"] == "handled":
        handled[stage] += 1
dropped = stats["ring_full"] + stats["evicted"]
for k, n in handled.items():
    # Each stage handles every event twice (the latency and the throughput runs); deferred calls are extra.
    if dropped == 0:
        check(n == 2 * events, f"stage {k}: {n} handled calls in the trace, expected {2 * events}")
    else:
        check(n <= 2 * events, f"stage {k}: {n} handled calls, more than the {2 * events} made")
check(len(calls) == stats["kept"], f"{len(calls)} calls in the file, the runtime kept {stats['kept']}")

if problems:
    print("\n".join(problems[:20]))
    sys.exit(1)
print(f"{len(calls)} handler calls on {len(threads)} tracks ({summary['backend']} backend), "
      f"{dropped} dropped: the trace reads back")

#!/usr/bin/env python3
"""Turns the --json output of the ringkernel benchmarks into SVG plots.

usage: /usr/bin/python3 bench/plot_results.py [--out DIR] FILE_OR_DIR...

Each input file holds one JSON object per line, as printed by `bench_<name> --json` (a directory means every
*.json file in it). Objects with "skipped": true are reported and skipped. Every figure is titled with the
backend and the machine it ran on; CPU-backend figures say so in the title, so they are never mistaken for
GPU figures. Needs matplotlib (Debian: python3-matplotlib, hence /usr/bin/python3).
"""

import argparse
import json
import pathlib
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "ringkernel"  # stable ids: re-running gives identical files
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("plot_results.py needs matplotlib: apt-get install python3-matplotlib, then run it with /usr/bin/python3")


def label(result):
    backend = result.get("backend", "?").upper()
    machine = result.get("machine", "unknown machine")
    if backend == "CPU":
        return f"CPU backend (not a GPU figure) on {machine}"
    return f"{backend} backend on {machine}"


def save(fig, out_dir, name):
    path = out_dir / name
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path}")
    return path


def plot_mailbox(result, out_dir):
    queues = [
        ("ringkernel", "ringkernel mailbox"),
        ("mutex_ring", "mutex ring"),
        ("moodycamel", "moodycamel::ConcurrentQueue"),
        ("boost_lockfree", "boost::lockfree::queue"),
    ]
    rows = result["results"]
    producers = [r["producers"] for r in rows]
    present = [(k, n) for k, n in queues if any(r.get(f"{k}_msgs_per_s") for r in rows)]
    width = 0.8 / max(1, len(present))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (key, name) in enumerate(present):
        xs, med, lo, hi = [], [], [], []
        for j, r in enumerate(rows):
            s = r.get(f"{key}_msgs_per_s")
            if not s:
                continue
            xs.append(j + (i - (len(present) - 1) / 2) * width)
            med.append(s["median"] / 1e6)
            lo.append((s["median"] - s["min"]) / 1e6)
            hi.append((s["max"] - s["median"]) / 1e6)
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(range(len(producers)), [f"{p} producer{'s' if p > 1 else ''}" for p in producers])
    ax.set_ylabel("million messages/s (median, bars: min-max)")
    missing = result.get("missing_baselines") or []
    note = f"\nnot built: {', '.join(m.split(' (')[0] for m in missing)}" if missing else ""
    ax.set_title(f"MPSC queue throughput, one consumer, {result['payload_bytes']}-byte payloads\n{label(result)}{note}",
                 fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, out_dir, f"mailbox_throughput.{result['backend']}.svg")


def plot_latency(result, out_dir, key, what, file_stem):
    rows = result["results"]
    names = [r["method"] for r in rows]
    med = [r[key]["median"] / 1e3 for r in rows]
    p99 = [r[key]["p99"] / 1e3 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.7 * len(rows)))
    ys = range(len(rows))
    ax.barh([y - 0.18 for y in ys], med, 0.36, label="median")
    ax.barh([y + 0.18 for y in ys], p99, 0.36, label="p99")
    for y, m, p in zip(ys, med, p99):
        ax.text(m, y - 0.18, f" {m:.2f}", va="center", fontsize=8)
        ax.text(p, y + 0.18, f" {p:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xlabel("microseconds")
    if max(p99) / max(min(med), 1e-9) > 50:
        ax.set_xscale("log")
    ax.set_title(f"{what}\n{label(result)}", fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, out_dir, f"{file_stem}.{result['backend']}.svg")


def plot_throughput(result, out_dir):
    paths = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for payload in sorted({r["payload_bytes"] for r in result["throughput"]}):
        rows = [r for r in result["throughput"] if r["payload_bytes"] == payload]
        ax.errorbar([r["actors"] for r in rows], [r["msgs_per_s"]["median"] for r in rows],
                    yerr=[[r["msgs_per_s"]["median"] - r["msgs_per_s"]["min"] for r in rows],
                          [r["msgs_per_s"]["max"] - r["msgs_per_s"]["median"] for r in rows]],
                    marker="o", capsize=3, label=f"{payload}-byte payloads")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("actors")
    ax.set_ylabel("K2K messages/s (median, bars: min-max)")
    copy = result.get("copy_gbps")
    copy_note = f"; device-to-device cudaMemcpy {copy['median']:.0f} GB/s" if copy else ""
    ax.set_title(f"K2K throughput to random destinations{copy_note}\n{label(result)}", fontsize=9)
    ax.legend(fontsize=8)
    paths.append(save(fig, out_dir, f"k2k_throughput.{result['backend']}.svg"))

    rows = result["scaling"]
    if rows:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
        actors = [r["actors"] for r in rows]
        left.plot(actors, [r["msgs_per_s"]["median"] for r in rows], marker="o", label="all actors")
        left.plot(actors, [r["msgs_per_s_per_actor"] for r in rows], marker="s", label="per actor")
        left.set_xscale("log", base=2)
        left.set_yscale("log")
        left.set_xlabel("actors")
        left.set_ylabel("messages/s (median)")
        left.legend(fontsize=8)
        left.set_title("throughput, 64-byte payloads", fontsize=9)
        right.plot(actors, [r["memory_bytes_per_actor"] / 1024 for r in rows], marker="o", label="measured / actors")
        marginal = [(r["actors"], r["memory_marginal_bytes_per_actor"] / 1024) for r in rows
                    if r.get("memory_marginal_bytes_per_actor") is not None]
        if marginal:
            right.plot(*zip(*marginal), marker="s", label="marginal: (m(N) - m(1)) / (N - 1)")
        right.plot(actors, [r["mailbox_bytes_per_actor"] / 1024 for r in rows], linestyle="--",
                   label="mailbox by geometry")
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set_xlabel("actors")
        right.set_ylabel("KiB per actor")
        right.legend(fontsize=8)
        method = rows[0].get("memory_method", "")
        right.set_title(f"memory per actor\n({method})", fontsize=8)
        fig.suptitle(f"Scaling from 1 actor\n{label(result)}", fontsize=9)
        paths.append(save(fig, out_dir, f"k2k_scaling.{result['backend']}.svg"))
    return paths


def load(inputs):
    files = []
    for item in inputs:
        p = pathlib.Path(item)
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            line = line.strip()
            if line.startswith("{"):
                try:
                    yield f, json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"{f}:{n}: not JSON: {e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="JSON files or folders of *.json files")
    parser.add_argument("--out", default="docs/plots", help="folder for the SVG files (default: docs/plots)")
    args = parser.parse_args()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = 0
    for f, result in load(args.inputs):
        bench = result.get("benchmark")
        if result.get("skipped"):
            print(f"{f}: {bench} skipped ({result.get('reason')}); nothing to plot")
            continue
        if bench == "mailbox_throughput":
            plot_mailbox(result, out_dir)
        elif bench == "k2k_latency":
            plot_latency(result, out_dir, "latency_ns", "K2K one-way hop latency (2 actors)", "k2k_latency")
        elif bench == "host_round_trip":
            plot_latency(result, out_dir, "round_trip_ns", "Host -> actor -> host round trip", "host_round_trip")
        elif bench == "k2k_throughput":
            plot_throughput(result, out_dir)
        else:
            print(f"{f}: unknown benchmark {bench!r}; skipped")
            continue
        made += 1
    if made == 0:
        sys.exit("no benchmark results to plot")


if __name__ == "__main__":
    main()

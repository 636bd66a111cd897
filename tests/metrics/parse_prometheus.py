#!/usr/bin/env python3
"""Parses a Prometheus text exposition with the reference client's parser (prometheus_client) and prints
every sample as JSON: {"families": {name: type}, "samples": [[name, {labels}, value], ...]}.
Exits 2 when the text does not parse, 3 when prometheus_client is missing. Used by tests/host/test_metrics.cpp.
"""
import json
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus_client is missing: run tools/install-deps.sh (python3-prometheus-client)", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    # newline="": a raw carriage return in a label value is legal text, not a line end to translate
    text = open(sys.argv[1], encoding="utf-8", newline="").read()
    families = {}
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            if family.name in families:
                raise ValueError(f"family {family.name} appears twice")
            families[family.name] = family.type
            for s in family.samples:
                samples.append([s.name, dict(s.labels), s.value])
    except Exception as e:  # the parser raises ValueError and friends on malformed input
        print(f"parse error: {e}", file=sys.stderr)
        return 2
    json.dump({"families": families, "samples": samples}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs the third-party Python verifier that docs/audit.md shows, exactly as the doc prints it (the code
between its `audit-verifier:begin` and `audit-verifier:end` markers), on one log, so the doc and its test
cannot drift apart.

Usage: audit_doc_verifier.py DOC LOG [--allow-open]
Exit status: 0 the snippet accepted the log; 1 it rejected it (raised ValueError); 2 the doc has no
snippet between the markers; 3 the snippet failed otherwise (a crash, not a verdict).
"""
import re
import sys
import traceback


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    doc, log = sys.argv[1], sys.argv[2]
    allow_open = "--allow-open" in sys.argv[3:]
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    found = re.search(r"<!-- audit-verifier:begin -->\s*```python\n(.*?)```\s*<!-- audit-verifier:end -->",
                      text, re.S)
    if not found:
        print(f"{doc}: no python block between <!-- audit-verifier:begin --> and <!-- audit-verifier:end -->")
        return 2
    namespace = {}
    try:
        exec(compile(found.group(1), f"{doc} (the verifier snippet)", "exec"), namespace)
        entries, head = namespace["verify_audit_log"](log, allow_open=allow_open)
    except ValueError as e:
        print(f"rejected: {e}")
        return 1
    except Exception:  # pylint: disable=broad-except
        traceback.print_exc()
        return 3
    print(f"accepted: {entries} entries, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

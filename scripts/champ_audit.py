"""Recompute the champ-math matcher's agreement with the hand audit.

Usage: ``python scripts/champ_audit.py [path/to/champ_audit.jsonl]``

Each audit row holds a conversation id, the reference, the model's final sentence, the matcher's label at
audit time and a label decided by hand. This script re-runs the *current* matcher on those ids and prints
n, agreements, the rate, the disagreements and the rows the matcher now abstains on. Exit status 1 if the
rate over labelled rows falls below ``--min-rate`` (default 0.95).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from aarlab.testbed.tasks.champ_math import AUDIT_PATH, audit_agreement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=AUDIT_PATH)
    parser.add_argument("--min-rate", type=float, default=0.95)
    args = parser.parse_args(argv)
    res = audit_agreement(args.path)
    rounds = Counter(str(r.get("round", "?")) for r in (*res.disagreements, *res.abstained))
    print(f"audit file: {args.path}")
    print(f"n={res.n} labelled_by_matcher={res.labelled} agree={res.agree} abstained={len(res.abstained)}")
    print(f"agreement over labelled: {res.rate:.4f}   strict (abstain = disagree): {res.strict_rate:.4f}")
    for row in res.disagreements:
        print(
            f"DISAGREE {row['id']}: matcher={row['matcher_now']} human={row['human_label']}\n"
            f"    ref={row['reference']!r}\n    sentence={row['final_sentence']!r}\n    note={row['note']!r}"
        )
    for row in res.abstained:
        print(f"ABSTAIN  {row['id']}: human={row['human_label']} sentence={row['final_sentence']!r}")
    if rounds:
        print("non-agreeing rows by audit round:", dict(sorted(rounds.items())))
    return 0 if res.rate >= args.min_rate else 1


if __name__ == "__main__":
    sys.exit(main())

"""Summarise a py-spy speedscope profile: share of samples in which each function is on the
stack (inclusive) and at the top (self). Run: ``.venv/bin/python bench/profile_summary.py
var/bench/profiles/NAME.speedscope.json [--top 25] [--match TEXT]``."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

IDLE = ("EpollSelector.select", "_worker (thread.py", "Condition.wait", "Event.wait")
"""Frames at the top of a stack that wait (``--busy`` leaves them out)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose name/file has this")
    parser.add_argument("--thread", default=None, help="only threads whose name has this")
    parser.add_argument(
        "--busy", action="store_true", help="leave out samples waiting in select (idle)"
    )
    args = parser.parse_args()
    doc = json.loads(args.profile.read_text())
    frames = doc["shared"]["frames"]
    names = [f"{f['name']} ({Path(f.get('file', '?')).name}:{f.get('line', 0)})" for f in frames]
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for profile in doc["profiles"]:
        if args.thread is not None and args.thread not in profile["name"]:
            continue
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack or (args.busy and names[stack[-1]].startswith(IDLE)):
                continue
            total += weight
            for name in {names[i] for i in stack}:
                inclusive[name] += weight
            self_[names[stack[-1]]] += weight
    print(f"{total} samples")
    print("inclusive:")
    for name, n in inclusive.most_common():
        if args.match in name:
            print(f"  {100 * n / total:5.1f} %  {name}")
            args.top -= 1
            if args.top <= 0:
                break
    print("self:")
    for name, n in self_.most_common(25):
        print(f"  {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()

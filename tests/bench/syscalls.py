#!/usr/bin/env python3
"""berth's system calls per request during a run, by thread and by call: reads
`perf stat -x, --per-thread` of the syscall tracepoints (raw_syscalls:sys_enter
for the total, syscalls:sys_enter_<name> for each call named) and prints one
line per kind of thread, its threads added up (the two HTTP workers are one
line), with the calls that make up at least 0.01 a request.

usage: python3 syscalls.py PERF_STAT_CSV REQUESTS LABEL
"""
import collections
import re
import sys

from stages import HTTP_WORKER_THREAD, SERVICE_LOG_THREADS, WRITER_THREAD

KINDS = [
    ("HTTP workers", HTTP_WORKER_THREAD),
    ("log writer", WRITER_THREAD),
    ("service log", SERVICE_LOG_THREADS),
]


def kind_of(thread):
    name = re.sub(r"-\d+$", "", thread)
    return next((kind for kind, prefix in KINDS if name.startswith(prefix)), "other")


def main():
    path, requests, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    counts = collections.defaultdict(collections.Counter)
    try:
        lines = open(path).readlines()
    except OSError:
        lines = []  # perf could not start
    for line in lines:
        fields = line.rstrip("\n").split(",")
        if len(fields) < 4 or not fields[1].isdigit():
            continue  # a comment, a blank line or "<not counted>"
        thread, count, event = fields[0], int(fields[1]), fields[3]
        call = "all" if event == "raw_syscalls:sys_enter" else event.removeprefix("syscalls:sys_enter_")
        counts[kind_of(thread)][call] += count
    if not counts:
        sys.exit(f"perf counted no system calls for the {label} run "
                 "(are the kernel's syscall tracepoints readable here?)")
    order = [kind for kind, _ in KINDS] + ["other"]
    total = sum(c["all"] for c in counts.values())
    print(f"system calls per {label}: {total / requests:.2f}")
    for kind in sorted(counts, key=order.index):
        calls = counts[kind]
        named = ", ".join(f"{name} {n / requests:.2f}" for name, n in calls.most_common()
                          if name != "all" and n / requests >= 0.01)
        print(f"  {kind}: {calls['all'] / requests:.2f}" + (f" ({named})" if named else ""))


if __name__ == "__main__":
    main()

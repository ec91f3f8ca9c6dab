#!/usr/bin/env python3
"""Where berth's CPU goes during a run, by stage: reads `perf script -F comm,ip,sym`
of a `perf record --call-graph dwarf` of the berth process and prints each
stage's share of the samples (cpu-clock: time on a CPU, user and kernel).

A sample of an HTTP worker belongs to the first of berth's own stages below
found anywhere on its stack (the token check's HMAC to the token check), or,
outside them, to the system call it is in, or else to the HTTP layer
(actix-web, tokio). The log writer's and the service log's threads are stages
of their own.

usage: perf script -i perf.data -F comm,ip,sym | python3 stages.py
"""
import collections
import sys

# berth's threads as the kernel names them (the first 15 characters of each
# thread's name: "berth-log-writer", "berth-log-lines"; before issue 37's
# twelfth step the service log's lines were tracing-appender's). perf and
# tests/bench/syscalls.py read them by these.
WRITER_THREAD = "berth-log-write"
SERVICE_LOG_THREADS = ("berth-log-lines", "tracing-appende")
HTTP_WORKER_THREAD = "actix-rt|system"

# The first whose pattern is on a sample's stack names its stage: the license
# service's own stages before the service as a whole.
WORKER_STAGES = [
    ("rate limit", "RateLimiter::check"),
    ("request body read", "berth::http::read_body"),
    ("request body parsed", "berth::clearkey::parse_request"),
    ("token check (HMAC, base64, JSON, policy)", "berth::token::verify"),
    ("hand-off to the log writer and back", "LogHandle::append"),
    ("license service, the rest (keys, user hash)", "berth::license::LicenseService"),
    ("answer body", "berth::clearkey::response"),
    ("service log line", "berth::http::log_outcome"),
]
SYSCALLS = [
    ("kernel: send (with loopback delivery)", "__x64_sys_sendto"),
    ("kernel: receive", "__x64_sys_recvfrom"),
    ("kernel: epoll", "__x64_sys_epoll_wait"),
    ("kernel: futex (wake-ups)", "__x64_sys_futex"),
]
WRITER_STAGES = [
    ("fsync", "__x64_sys_fsync"),
    ("WAL writes and reads (pwrite, pread)", "__x64_sys_pwrite64"),
    ("WAL writes and reads (pwrite, pread)", "__x64_sys_pread64"),
    ("chain hash", "berth::chain::row_hash"),
    ("SQL (SQLite's own work)", "sqlite3_step"),
]


def samples(lines):
    comm, frames = None, []
    for line in lines:
        line = line.strip()
        if not line:
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif comm is None:
            comm = line
        else:
            parts = line.split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "?")
    if comm is not None:
        yield comm, frames


def stage(comm, frames):
    if comm.startswith(WRITER_THREAD):
        for name, pattern in WRITER_STAGES:
            if any(pattern in f for f in frames):
                return "log writer thread: " + name
        return "log writer thread: the rest (batching, binding, answers)"
    if comm.startswith(SERVICE_LOG_THREADS):
        return "service log thread (writes the lines)"
    for name, pattern in WORKER_STAGES + SYSCALLS:
        if any(pattern in f for f in frames):
            return name
    if any(f.startswith(("__x64_sys_", "entry_SYSCALL")) for f in frames):
        return "kernel: other system calls"
    if any(f.startswith(("asm_", "irq", "__irq", "handle_softirqs")) for f in frames[:3]):
        return "kernel: interrupts"
    return "HTTP layer (actix-web, tokio) and the rest"


def main():
    counts = collections.Counter(stage(comm, frames) for comm, frames in samples(sys.stdin))
    total = sum(counts.values()) or 1
    print(f"where berth's CPU went ({total} samples):")
    for name, n in counts.most_common():
        print(f"  {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()

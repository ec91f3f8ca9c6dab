#!/usr/bin/env python3
"""When the machine idles during a license run, and what berth's threads were
doing then: reads `perf script -F cpu,time,trace` of `sched:sched_switch`
recorded on every CPU, follows each CPU's idle spells (it switches to
`swapper`) and, for each, the log writer's state and whether any HTTP worker
and wrk could run. A thread's state is the one it last left a CPU in (D: it
waits for the disk, S: it sleeps until woken), or "on a CPU" from when one
switches to it.

The share of a license run's time the machine idles is the split's second
factor in the run's ratio (issue 37, sixth step); this says where it comes from.

usage: perf script -i FILE -F cpu,time,trace | python3 tests/bench/idle.py
"""
import collections
import re
import sys

from stages import HTTP_WORKER_THREAD, WRITER_THREAD

SWITCH = re.compile(
    r"\[(\d+)\]\s+([\d.]+):.*?prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ "
    r"prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)"
)
WRITER_STATES = {"D": "waited for the disk (D)", "S": "waited for work (S)", "on": "was on the other CPU or runnable"}


def main():
    switches = [m for m in map(SWITCH.search, sys.stdin) if m]
    if not switches:
        print("no sched_switch events to read")
        return
    comm, state = {}, {}
    idle_since, idle_in = {}, {}
    by_writer, by_rest = collections.Counter(), collections.Counter()
    idle = 0.0
    first, last = float(switches[0][2]), float(switches[-1][2])
    cpus = set()

    def now_state(thread):
        return [state.get(pid, "S") for pid, name in comm.items() if name == thread]

    for m in switches:
        cpu, t = int(m[1]), float(m[2])
        prev_comm, prev_pid, prev_state = m[3], int(m[4]), m[5]
        next_comm, next_pid = m[6], int(m[7])
        cpus.add(cpu)
        if prev_comm.startswith("swapper") and cpu in idle_since:
            spell = t - idle_since.pop(cpu)
            idle += spell
            writer, rest = idle_in.pop(cpu)
            by_writer[writer] += spell
            by_rest[rest] += spell
        if not prev_comm.startswith("swapper"):
            comm[prev_pid] = prev_comm
            state[prev_pid] = "on" if prev_state.startswith("R") else prev_state[0]
        if not next_comm.startswith("swapper"):
            comm[next_pid] = next_comm
            state[next_pid] = "on"
        else:
            idle_since[cpu] = t
            writer = next(iter(now_state(WRITER_THREAD)), "S")
            workers = "on" in now_state(HTTP_WORKER_THREAD)
            wrk = "on" in now_state("wrk")
            rest = (
                "an HTTP worker could run" if workers else
                "no HTTP worker could run, wrk could" if wrk else
                "neither an HTTP worker nor wrk could run"
            )
            idle_in[cpu] = (WRITER_STATES.get(writer, writer), rest)
    span = (last - first) * len(cpus)
    if span <= 0 or idle <= 0:
        print("the machine did not idle in the recorded spell")
        return
    print(f"the machine idled {100 * idle / span:.1f} % of {len(cpus)} CPUs' {last - first:.1f} s; of that idle time:")
    for what, spent in by_writer.most_common():
        print(f"  {100 * spent / idle:5.1f} %  the log writer {what}")
    for what, spent in by_rest.most_common():
        print(f"  {100 * spent / idle:5.1f} %  {what}")


if __name__ == "__main__":
    main()

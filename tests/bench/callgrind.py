#!/usr/bin/env python3
"""Three shares of a callgrind profile of berth, per request, for `run
--instructions`: reads `callgrind_annotate --tree=caller --inclusive=yes
--threshold=100` of the profile and prints `writer=N decode_memset=N sha256=N`.

- writer: the log writer thread (`Writer::run`, inclusive). Its share moves
  with how many licenses each commit carries; the rest of the figure does not.
- decode_memset: the `memset` actix-http's request decoder calls to clear its
  3 KB array of header indexes, on every decode (a request's head, and each
  poll that finds no new request). glibc clears it with `rep stosb`, one
  instruction on a real CPU, which valgrind counts once per byte.
- sha256: SHA-256 (`SHA256_Update` and `SHA256_Final`, inclusive: the token's
  HMAC, the chain hash, the user hash). valgrind's CPU has no SHA extensions,
  so libcrypto runs its rounds in software, where CPUs that have them (every
  AMD Zen, Intel since Ice Lake) retire a small part of those instructions.

With the profile's total instructions as a second argument it also prints
`estimate=N`: the instructions per request with those two counted as a CPU with
SHA extensions retires them (issue 37's fifth step measured both constants on
Debian's libcrypto 3 and glibc 2.36+):

- each `memset` of the header array counts as its own code, about 30
  instructions, instead of 3,072 for `rep stosb` on 3,072 bytes;
- SHA-256's rounds (the function that `SHA256_Update` and `SHA256_Final` call)
  cost 1,796 instructions a 64-byte block under valgrind and 170 in
  libcrypto's SHA-NI loop; the code around them (padding, copies, cleansing)
  stays as counted.

usage: callgrind_annotate --tree=caller --inclusive=yes --threshold=100 DUMP \
         | python3 callgrind.py REQUESTS [TOTAL_INSTRUCTIONS]

With `--by-crate` it reads the flat self costs instead and prints, per request,
the instructions spent in each crate's own code (the first path in a
function's name: `<berth::logline::LineVisitor as tracing_core::...>` is
berth's), in SQLite (the C functions linked into berth), and in each shared
library (glibc's `memset` and allocator apart):

    callgrind_annotate --inclusive=no --threshold=100 DUMP \
         | python3 callgrind.py --by-crate REQUESTS
"""
import re
import sys

COST = r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+"  # a listing line's instructions and share
LINE = re.compile(COST + r"([*<>])\s+(.*)$")
CALLS = re.compile(r"\(([0-9,]+)x\)")
REP_STOSB_BYTES = 3072  # actix-http's 96 header indexes of 32 bytes
SHA_BLOCK_VALGRIND, SHA_BLOCK_SHA_NI = 1796, 170
SELF = re.compile(COST + r"(.*?)(?: \[([^\]]*)\])?$")
# callgrind_annotate lists each thread's root functions with the thread's
# whole cost; they are not code of their own.
THREAD_ROOTS = ("clone.S:", "start_thread", "thread_start", "vtable.shim", "__rust_begin_short_backtrace", "::block_on")
STD = ("core", "alloc", "std")


def crate_of(name):
    """The crate whose code a Rust function is: a trait's method implemented for
    a standard type (`<core::marker::PhantomData<T> as serde_core::...>`) is the
    trait's crate's, any other the type's; C functions have no crate."""
    impl = re.match(r"<(.+?) as ([a-z_][a-z0-9_]*)::", name)
    first = re.search(r"([a-z_][a-z0-9_]*)::", name)
    if impl:
        own = re.match(r"[&*]*(?:mut |const )?([a-z_][a-z0-9_]*)::", impl.group(1))
        return impl.group(2) if not own or own.group(1) in STD else own.group(1)
    return first.group(1) if first else None


def by_crate(requests):
    totals = {}
    for line in sys.stdin:
        m = SELF.match(line)
        if not m or m.group(2) == "PROGRAM TOTALS" or any(root in m.group(2) for root in THREAD_ROOTS):
            continue
        cost, name, lib = int(m.group(1).replace(",", "")), m.group(2).split(":", 1)[-1], (m.group(3) or "").rsplit("/", 1)[-1]
        if lib.startswith("libc.") or (not lib and m.group(2).startswith("./")):  # glibc's own source paths
            key = "glibc " + ("memset" if "memset" in name else "allocator" if re.search(r"malloc|arena", m.group(2)) else "other")
        elif lib != "berth":
            key = lib
        else:
            key = crate_of(name) or "SQLite (C)"
        totals[key] = totals.get(key, 0) + cost
    for key, cost in sorted(totals.items(), key=lambda kv: -kv[1]):
        if cost // requests:
            print(f"{cost // requests:8d} {key}")
    print(f"{sum(totals.values()) // requests:8d} in all")


def main():
    if sys.argv[1] == "--by-crate":
        return by_crate(max(int(sys.argv[2]), 1))
    requests = max(int(sys.argv[1]), 1)
    writer = decode_memset = memset_calls = sha256 = sha_rounds = 0
    callers = []  # the `<` lines of the block being read: (cost, name)
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            callers = []
            continue
        cost, kind, name = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        if kind == "<":
            callers.append((cost, name))
            continue
        if kind == "*":
            if "berth::store::log::Writer::run " in name:
                writer = cost
            elif re.search(r"\?\?\?:SHA256_(Update|Final) ", name):
                sha256 += cost
            elif re.search(r":__memset_\w+ ", name):
                from_decode = [(c, n) for c, n in callers if "h1::decoder::MessageType>::decode" in n]
                decode_memset += sum(c for c, _ in from_decode)
                memset_calls += sum(int(CALLS.search(n).group(1).replace(",", "")) for _, n in from_decode)
            elif "libcrypto" in name and callers and all(re.search(r":SHA256_(Update|Final) ", n) for _, n in callers):
                sha_rounds += cost
        callers = []
    shares = [("writer", writer), ("decode_memset", decode_memset), ("sha256", sha256)]
    if len(sys.argv) > 2:
        over_counted = memset_calls * (REP_STOSB_BYTES - 1) + sha_rounds * (1 - SHA_BLOCK_SHA_NI / SHA_BLOCK_VALGRIND)
        shares.append(("estimate", int(sys.argv[2]) - int(over_counted)))
    print(" ".join(f"{k}={v // requests}" for k, v in shares))


if __name__ == "__main__":
    main()

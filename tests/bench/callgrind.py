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

usage: callgrind_annotate --tree=caller --inclusive=yes --threshold=100 DUMP \
         | python3 callgrind.py REQUESTS
"""
import re
import sys

LINE = re.compile(r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+([*<>])\s+(.*)$")


def main():
    requests = int(sys.argv[1])
    writer = decode_memset = sha256 = 0
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
                decode_memset += sum(c for c, n in callers if "h1::decoder::MessageType>::decode" in n)
        callers = []
    print(" ".join(f"{k}={v // max(requests, 1)}" for k, v in
                   [("writer", writer), ("decode_memset", decode_memset), ("sha256", sha256)]))


if __name__ == "__main__":
    main()

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
"""
import re
import sys

LINE = re.compile(r"^\s*([0-9,]+) \([ 0-9.]+%\)\s+([*<>])\s+(.*)$")
CALLS = re.compile(r"\(([0-9,]+)x\)")
REP_STOSB_BYTES = 3072  # actix-http's 96 header indexes of 32 bytes
SHA_BLOCK_VALGRIND, SHA_BLOCK_SHA_NI = 1796, 170


def main():
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

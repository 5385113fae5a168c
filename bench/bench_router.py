"""Router overhead per call: the routing decision plus its telemetry event (goal < 20 µs).

    $ python bench/bench_router.py [--calls 200000]

Baseline measured in the same run: calling the same function directly.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dspex_lab.router import Router


def noop(x: int) -> int:
    return x


def _per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    router = Router()
    router.register("noop", "native", noop)
    router.register("picky", "native", noop, can_handle=lambda x: True)
    direct, routed, checked, planned = [], [], [], []
    for _ in range(args.rounds):
        direct.append(_per_call_us(noop, args.calls))
        routed.append(_per_call_us(lambda i: router.call("noop", i), args.calls))
        checked.append(_per_call_us(lambda i: router.call("picky", i), args.calls))
        planned.append(_per_call_us(lambda i: router.plan("noop", i), args.calls))
    med = statistics.median
    base = med(direct)
    print(f"{'path':<34}{'µs/call':>10}{'overhead µs':>14}")
    print(f"{'direct function call (baseline)':<34}{base:>10.2f}{0:>14.2f}")
    for name, values in (("router.call (native)", routed),
                         ("router.call (native + can_handle)", checked),
                         ("router.plan only", planned)):
        print(f"{name:<34}{med(values):>10.2f}{med(values) - base:>14.2f}")
    overhead = med(routed) - base
    print(f"\nrouting overhead {overhead:.2f} µs per call "
          f"({'meets' if overhead < 20 else 'MISSES'} the < 20 µs goal)")


if __name__ == "__main__":
    main()

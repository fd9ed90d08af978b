"""The long fuzz campaign: ``python -m tests.fuzz.campaign --streams 1000000``.

Builds a corpus of valid broker streams (:func:`tests.fuzz.streams.corpus`),
then for each of ``--streams`` iterations mutates one at random and feeds it to
a fresh core connection cut at 0 to 4 random points. It prints the number of
streams run, the outcome classes with their counts, and how many streams made
``receive_data`` raise (must be 0: every malformed stream must end as a typed
close). With ``--pika N`` the first N mutated streams are also fed to pika's
frame decoder (``pika.frame.decode_frame`` in a loop, as pika's connection
does), counting the exceptions that are not ``pika.exceptions`` types.

Exit status 1 if any stream raised or broke the buffer bound. ``tox -e fuzz``
runs it with one million streams; the test suite runs a short deterministic
slice (``tests/fuzz/test_fuzz.py``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter

from tests.fuzz.streams import BufferBoundError, corpus, mutate, run_stream, split_points


def pika_outcome(data: bytes) -> str:
    """Feed ``data`` to pika 1.4.4's frame decoder the way its connection does."""
    import pika.exceptions
    import pika.frame

    buf = data
    try:
        while buf:
            consumed, frame = pika.frame.decode_frame(buf)
            if not consumed:
                return "pika:incomplete"
            buf = buf[consumed:]
        return "pika:ok"
    except pika.exceptions.AMQPError as exc:
        return f"pika:{type(exc).__name__}"
    except Exception as exc:  # what the comparison counts
        return f"pika RAISED:{type(exc).__name__}"


def report_raised(n: int, data: bytes, cuts: list[int]) -> None:
    """Print what reproduces a stream that made the core raise, and the traceback."""
    print(f"stream {n} raised; reproduce with run_stream({data!r}, {cuts!r})", file=sys.stderr)
    try:
        run_stream(data, cuts, reraise=True)
    except Exception:
        traceback.print_exc()


def run(streams: int, seed: int, corpus_size: int, pika: int, report_every: int) -> int:
    rng = random.Random(seed)
    seeds = corpus(corpus_size, seed)
    outcomes: Counter[str] = Counter()
    pika_outcomes: Counter[str] = Counter()
    bound_errors = 0
    started = time.perf_counter()
    for n in range(1, streams + 1):
        data = mutate(rng.choice(seeds), rng, seeds)
        cuts = split_points(len(data), rng, rng.randint(1, 5))
        try:
            outcome = run_stream(data, cuts)
            outcomes[outcome] += 1
            if outcome.startswith("RAISED") and outcomes[outcome] <= 3:
                report_raised(n, data, cuts)
        except BufferBoundError as exc:
            bound_errors += 1
            print(f"buffer bound broken: {exc}", file=sys.stderr)
        if n <= pika:
            pika_outcomes[pika_outcome(data)] += 1
        if report_every and n % report_every == 0:
            rate = n / (time.perf_counter() - started)
            print(f"... {n} streams, {rate:.0f}/s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    raised = sum(count for name, count in outcomes.items() if name.startswith("RAISED"))
    print(f"txamqp091 core: {streams} mutated streams (seed {seed}) in {elapsed:.1f} s")
    for name, count in outcomes.most_common():
        print(f"  {count:9d}  {name}")
    print(f"exceptions raised out of receive_data: {raised}")
    print(f"buffer bound (frame_max + 8) broken: {bound_errors}")
    if pika:
        pika_raised = sum(c for name, c in pika_outcomes.items() if "RAISED" in name)
        print(f"pika 1.4.4 frame decoder: the first {pika} of the same streams")
        for name, count in pika_outcomes.most_common():
            print(f"  {count:9d}  {name}")
        print(f"pika: exceptions other than pika.exceptions: {pika_raised}")
    return 1 if raised or bound_errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100_000, help="mutated streams to run")
    parser.add_argument("--seed", type=int, default=0, help="the campaign's random seed")
    parser.add_argument("--corpus", type=int, default=64, help="valid streams to mutate")
    parser.add_argument(
        "--pika", type=int, default=0, help="also feed the first N streams to pika's decoder"
    )
    parser.add_argument("--report-every", type=int, default=100_000, help="progress lines")
    args = parser.parse_args(argv)
    return run(args.streams, args.seed, args.corpus, args.pika, args.report_every)


if __name__ == "__main__":
    sys.exit(main())

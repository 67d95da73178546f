"""Benchmark: avsep.evaluation.metrics (fast and exact BSS Eval) vs mir_eval 0.7 (no permutation).

Run from the repository root::

    python benchmarks/bench_metrics.py [--repeats 7] [--n-samples 65535] [--mixtures 3]
                                       [--batch 16] [--blas-threads N]

All implementations score the same random 2-source signals; calls alternate
between them (mir_eval, exact, fast, per mixture; then the batched fast call) so
that load changes on the machine hit them alike. Prints the median and minimum
time per mixture of

* ``mir_eval.separation.bss_eval_sources(..., compute_permutation=False)``,
* ``bss_eval_sources(..., method="exact")`` (bitwise mir_eval),
* ``bss_eval_sources(...)`` (the fast default) and
* ``bss_eval_batch`` over ``--batch`` mixtures (time per mixture),

the speed-ups (mir_eval / ours, on the medians), the largest absolute difference
of SDR/SIR/SAR from mir_eval over the ``--batch`` mixtures, how many of them the
fast method handed to the exact one, and the two target lines of the project's
issue::

    metrics speed-up: <x>× (target ≥ 20×) PASS|FAIL
    metrics max |Δ dB|: <d> (target ≤ 0.01) PASS|FAIL

There is no GPU path (the fast method is numpy/numba on the CPU), so no GPU
figure is measured.

This is a script, not a test: timings depend on the machine. mir_eval and the
exact method spend much of their time in LAPACK LU solves; on a machine shared
with other work, multithreaded OpenBLAS can slow them down by an order of
magnitude, so compare with ``--blas-threads 1`` too (it sets
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS when numpy is not yet
imported, and limits the loaded BLAS libraries with threadpoolctl). The fast
method calls no multithreaded library code.

:func:`run` returns the results as a list of dicts (``name``, ``value``,
``target``, ``passed``, ``unit``) for a driver that collects benchmarks; the two
target lines have ``passed`` True/False, informational entries have ``target``
and ``passed`` None.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy, scipy and avsep are imported in run(), after the BLAS thread count is set.

SPEEDUP_TARGET = 20.0
MAX_DB_TARGET = 0.01


def make_signals(rng: np.random.Generator, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Two coloured-noise references and estimates with leakage, filtering and noise."""
    import numpy as np
    import scipy.signal

    b, a = scipy.signal.butter(2, 0.3)
    ref = scipy.signal.lfilter(b, a, rng.standard_normal((2, n_samples)))
    ref[1] += 0.5 * np.sin(2 * np.pi * 0.02 * np.arange(n_samples))
    taps = rng.standard_normal(16) * np.exp(-np.arange(16) / 3.0)
    est = ref + 0.3 * scipy.signal.lfilter(taps, [1.0], ref) + 0.2 * ref[::-1]
    est += 0.05 * rng.standard_normal(est.shape)
    return ref, est


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per mixture and implementation")
    parser.add_argument("--n-samples", type=int, default=65535, help="samples per source")
    parser.add_argument("--mixtures", type=int, default=3, help="different random mixtures timed one by one")
    parser.add_argument("--batch", type=int, default=16, help="mixtures per bss_eval_batch call (also the accuracy set)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=None, help="BLAS/OpenMP threads (default: library's)")
    args = parser.parse_args(argv)
    if args.mixtures < 1 or args.batch < args.mixtures or args.repeats < 1:
        parser.error("need --repeats >= 1 and 1 <= --mixtures <= --batch")
    return args


def _blas_limit(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit the BLAS libraries already loaded to ``threads`` (threadpoolctl), if asked and available."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def run(argv: list[str] | None = None, *, verbose: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark; return its results (and print the report when ``verbose``)."""
    args = _parse(argv)
    if args.blas_threads is not None and "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)

    import numpy as np
    import scipy

    try:
        from avsep.evaluation import metrics
    except ImportError:  # not installed: run from a checkout
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from avsep.evaluation import metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import mir_eval
        import mir_eval.separation as mir_sep

    def mir_impl(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        sdr, sir, sar, _ = mir_sep.bss_eval_sources(ref, est, compute_permutation=False)
        return np.stack([sdr, sir, sar])

    def exact_impl(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        return np.stack(metrics.bss_eval_sources(ref, est, method="exact"))

    def fast_impl(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        return np.stack(metrics.bss_eval_sources(ref, est))

    def batch_impl(refs: np.ndarray, ests: np.ndarray) -> np.ndarray:
        return np.stack(metrics.bss_eval_batch(refs, ests))  # (3, batch, n_src)

    rng = np.random.default_rng(args.seed)
    pairs = [make_signals(rng, args.n_samples) for _ in range(args.batch)]
    refs = np.stack([p[0] for p in pairs])
    ests = np.stack([p[1] for p in pairs])

    with _blas_limit(args.blas_threads):
        # accuracy on every mixture of the batch (also the warm-up: numba compiles or loads its cache)
        expected = np.stack([mir_impl(r, e) for r, e in pairs], axis=1)  # (3, batch, n_src)
        got_exact = np.stack([exact_impl(r, e) for r, e in pairs], axis=1)
        got_fast = np.stack([fast_impl(r, e) for r, e in pairs], axis=1)
        got_batch = batch_impl(refs, ests)
        n_fallback = sum(metrics._fast_scores(r, e)[0] is None for r, e in pairs)
        diff_exact = float(np.max(np.abs(got_exact - expected)))
        diff_fast = float(max(np.max(np.abs(got_fast - expected)), np.max(np.abs(got_batch - expected))))

        times: dict[str, list[float]] = {"mir_eval": [], "exact": [], "fast": [], "batch": []}
        for _ in range(args.repeats):
            for ref, est in pairs[: args.mixtures]:
                times["mir_eval"].append(_time(lambda r=ref, e=est: mir_impl(r, e)))
                times["exact"].append(_time(lambda r=ref, e=est: exact_impl(r, e)))
                times["fast"].append(_time(lambda r=ref, e=est: fast_impl(r, e)))
            times["batch"].append(_time(lambda: batch_impl(refs, ests)) / args.batch)

    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["mir_eval"] / med["fast"]
    speedup_batch = med["mir_eval"] / med["batch"]
    speedup_exact = med["mir_eval"] / med["exact"]
    results: list[dict[str, Any]] = [
        {"name": "metrics speed-up", "value": speedup, "target": f">= {SPEEDUP_TARGET:g} x", "unit": "x",
         "passed": bool(speedup >= SPEEDUP_TARGET)},
        {"name": "metrics max |dB|", "value": diff_fast, "target": f"<= {MAX_DB_TARGET:g} dB", "unit": "dB",
         "passed": bool(diff_fast <= MAX_DB_TARGET)},
        {"name": "metrics batched speed-up", "value": speedup_batch, "target": None, "unit": "x", "passed": None},
        {"name": "metrics exact speed-up", "value": speedup_exact, "target": None, "unit": "x", "passed": None},
        {"name": "metrics exact max |dB|", "value": diff_exact, "target": None, "unit": "dB", "passed": None},
        {"name": "metrics fast fallbacks", "value": n_fallback, "target": None, "unit": f"of {args.batch}",
         "passed": None},
    ]
    for key in ("mir_eval", "exact", "fast", "batch"):
        results.append({"name": f"metrics {key} time per mixture", "value": med[key] * 1e3, "target": None,
                        "unit": "ms", "passed": None})

    if verbose:
        blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
        if args.blas_threads is not None:
            blas = f"{args.blas_threads} (--blas-threads)"
        try:
            import numba

            numba_version = numba.__version__
        except ImportError:
            numba_version = "absent (dense fallback)"
        print(f"bss_eval_sources, 2 sources x {args.n_samples} samples, no permutation; {args.mixtures} mixtures x "
              f"{args.repeats} repeats, batch of {args.batch} (numpy {np.__version__}, scipy {scipy.__version__}, "
              f"numba {numba_version}, mir_eval {mir_eval.__version__}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, BLAS threads: {blas})")
        rows = [("mir_eval", "mir_eval", None), ("exact", "exact (bitwise)", speedup_exact),
                ("fast", "fast", speedup), ("batch", f"fast, batch of {args.batch}", speedup_batch)]
        for key, label, ratio in rows:
            extra = "" if ratio is None else f"   speed-up {ratio:6.1f}x"
            print(f"  {label:<20}: median {med[key] * 1e3:8.2f} ms/mixture   min {min(times[key]) * 1e3:8.2f} ms{extra}")
        print(f"  max |difference| from mir_eval over SDR/SIR/SAR ({args.batch} mixtures): "
              f"fast {diff_fast:.3g} dB, exact {diff_exact:.3g} dB")
        print(f"  fast method handed {n_fallback} of {args.batch} mixtures to the exact one")
        print("  GPU: no GPU path (the fast method is numpy/numba on the CPU); not measured")
        print(f"metrics speed-up: {speedup:.1f}× (target ≥ {SPEEDUP_TARGET:g}×) {'PASS' if speedup >= SPEEDUP_TARGET else 'FAIL'}")
        print(f"metrics max |Δ dB|: {diff_fast:.3g} (target ≤ {MAX_DB_TARGET:g}) "
              f"{'PASS' if diff_fast <= MAX_DB_TARGET else 'FAIL'}")
    return results


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print the results."""
    run(argv, verbose=True)


if __name__ == "__main__":
    main()

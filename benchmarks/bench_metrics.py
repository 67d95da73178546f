"""Benchmark: avsep.evaluation.metrics.bss_eval_sources vs mir_eval 0.7 (no permutation).

Run from the repository root::

    python benchmarks/bench_metrics.py [--repeats 7] [--n-samples 65535] [--mixtures 3]
                                       [--blas-threads N]

Both implementations score the same random 2-source signals; calls alternate
between the two so that load changes on the machine hit both alike. Prints the
median and minimum time per call, the speed-up ratio (mir_eval / ours, on the
medians) and the largest absolute difference of SDR/SIR/SAR in dB.
This is a script, not a test: timings depend on the machine. Both
implementations spend most of their time in LAPACK LU solves; on a machine
shared with other work, multithreaded OpenBLAS can slow down by an order of
magnitude, so pass ``--blas-threads 1`` there (it sets OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS and MKL_NUM_THREADS before numpy is imported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np

# numpy, scipy and avsep are imported in main(), after the BLAS thread count is set.


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


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per mixture and implementation")
    parser.add_argument("--n-samples", type=int, default=65535, help="samples per source")
    parser.add_argument("--mixtures", type=int, default=3, help="number of different random mixtures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=None, help="BLAS/OpenMP threads (default: library's)")
    args = parser.parse_args(argv)
    if args.blas_threads is not None:
        if "numpy" in sys.modules:
            raise RuntimeError("--blas-threads must be applied before numpy is imported")
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)

    import numpy as np

    try:
        from avsep.evaluation.metrics import bss_eval_sources
    except ImportError:  # not installed: run from a checkout
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from avsep.evaluation.metrics import bss_eval_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import mir_eval
        import mir_eval.separation as mir_sep

    def ref_impl(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        sdr, sir, sar, _ = mir_sep.bss_eval_sources(ref, est, compute_permutation=False)
        return np.stack([sdr, sir, sar])

    def our_impl(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        return np.stack(bss_eval_sources(ref, est))

    rng = np.random.default_rng(args.seed)
    t_ref: list[float] = []
    t_our: list[float] = []
    max_diff = 0.0
    for _ in range(args.mixtures):
        ref, est = make_signals(rng, args.n_samples)
        a, b = ref_impl(ref, est), our_impl(ref, est)  # warm-up, and the values
        max_diff = max(max_diff, float(np.max(np.abs(a - b))))
        for _ in range(args.repeats):
            t_ref.append(_time(lambda: ref_impl(ref, est)))
            t_our.append(_time(lambda: our_impl(ref, est)))

    med_ref, med_our = statistics.median(t_ref), statistics.median(t_our)
    print(f"bss_eval_sources, 2 sources x {args.n_samples} samples, no permutation; "
          f"{args.mixtures} mixtures x {args.repeats} repeats "
          f"(numpy {np.__version__}, mir_eval {mir_eval.__version__}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")
    print(f"  mir_eval: median {med_ref * 1e3:8.1f} ms   min {min(t_ref) * 1e3:8.1f} ms")
    print(f"  avsep   : median {med_our * 1e3:8.1f} ms   min {min(t_our) * 1e3:8.1f} ms")
    print(f"  speed-up (mir_eval / avsep, medians): {med_ref / med_our:.2f}x "
          f"(mins: {min(t_ref) / min(t_our):.2f}x)")
    print(f"  max |difference| over SDR/SIR/SAR: {max_diff:.3g} dB")


if __name__ == "__main__":
    main()

"""Glue for the Snakemake scripts: per-rule logs, the job's resource usage and typed params."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from avsep.config.params import Params


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()

    def isatty(self) -> bool:
        return False


USAGE_COLUMNS = ("s", "h:m:s", "max_rss", "cpu_time", "user", "system")


def job_usage(started: float) -> dict[str, float | str]:
    """What this process and the children it waited for used since ``started`` (a ``time.time()``): wall seconds,
    peak resident memory in MiB (the largest of this process's and of any child's) and CPU seconds (user + system),
    from ``getrusage``: exact, read once at the end instead of sampled while the job runs."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    per_mib = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    wall = time.time() - started
    user, system = me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime
    own = _peak_rss_kib()
    own_mib = own / 1024 if own is not None else me.ru_maxrss / per_mib
    return {"s": round(wall, 4), "h:m:s": time.strftime("%H:%M:%S", time.gmtime(wall)),
            "max_rss": round(max(own_mib, kids.ru_maxrss / per_mib), 2), "cpu_time": round(user + system, 2),
            "user": round(user, 2), "system": round(system, 2)}


def _peak_rss_kib() -> int | None:
    """This process's own peak RSS (``VmHWM``, KiB). Linux's ``ru_maxrss`` of a process starts at its parent's peak
    (the memory it was forked from): every job would report at least the Snakemake process's ~190 MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def process_start() -> float:
    """When this process started (``time.time()`` scale): the job's wall time includes Python's start and imports.

    From ``/proc/self/stat`` (clock ticks since boot) and ``/proc/uptime``, good to 10 ms; ``psutil``'s
    ``create_time`` adds the whole-second boot time of ``/proc/stat`` and was up to a second early. Where there is no
    ``/proc``: the time of the call."""
    now = time.time()
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started_ticks = int(fields[19])  # field 22 of stat, counted after the ")" that ends the command name
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
        return now - max(age, 0.0)
    except (OSError, ValueError, IndexError):
        return now


def write_usage(path: str | os.PathLike[str], usage: dict[str, float | str]) -> None:
    """``usage`` as a one-row TSV (the columns of Snakemake's ``benchmark:`` files that it has), written atomically."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text("\t".join(USAGE_COLUMNS) + "\n" + "\t".join(str(usage[c]) for c in USAGE_COLUMNS) + "\n")
    os.replace(tmp, out)


@contextlib.contextmanager
def _tee_to(path: Path) -> Iterator[None]:
    """stdout and stderr also into ``path`` inside the block; a failure's traceback goes there too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = _Tee(f, old_out)  # type: ignore[assignment]
        sys.stderr = _Tee(f, old_err)  # type: ignore[assignment]
        try:
            yield
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err


@contextlib.contextmanager
def rule_context(smk: Any) -> Iterator[Params]:
    """Send stdout/stderr of a rule to its log file (and the console), yield the validated params; when the job
    ends well, write its resource usage to the rule's ``usage`` log (:func:`job_usage`).

    The rules record usage this way rather than with Snakemake's ``benchmark:``, which samples the job's process
    tree (``/proc/<pid>/smaps_rollup``) twice a second for its first 15 s: for a torch process that read took the
    Snakemake process 14 % of a core through the whole default DAG."""
    started = process_start()
    log = getattr(smk, "log", None)
    usage = getattr(log, "usage", None) if log is not None else None
    text_logs = [x for x in (log or []) if x != usage]
    with _tee_to(Path(text_logs[0])) if text_logs else contextlib.nullcontext():
        yield Params(smk.config)
    if usage:
        write_usage(usage, job_usage(started))

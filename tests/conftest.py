"""Test setup: nothing may reach the network; hubs are told to stay offline. Shared fixtures: mir_eval's reference
scores for the metrics tests."""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")) or self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    raise OSError(f"network access blocked in tests: {address!r}")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# mir_eval 0.7, the reference of the metrics tests (tests/test_metrics.py, tests/test_metrics_fast.py)
@pytest.fixture(scope="module")
def mir_sep() -> ModuleType:
    """``mir_eval.separation`` (version 0.7 has ``bss_eval_sources``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import mir_eval.separation as sep
    return sep


@pytest.fixture(scope="module")
def mir_ref(mir_sep: ModuleType) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """mir_eval's (sdr, sir, sar) without permutation, stacked to shape (3, n_src)."""

    def run(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sdr, sir, sar, perm = mir_sep.bss_eval_sources(ref, est, compute_permutation=False)
        assert list(perm) == list(range(ref.shape[0]))
        return np.stack([sdr, sir, sar])

    return run

"""Rows of a separation table also compare on the same mixtures: the mean over the mixtures every row scored."""

import json

import pandas as pd
import pytest

from avsep.reporting.tables import common_means, separation_table


def _per_mixture(scores: dict[str, float | None]) -> pd.DataFrame:
    return pd.DataFrame([{"mixture_id": m, "status": "scored" if v is not None else "skipped", "sdr": v, "sir": v,
                          "sar": v} for m, v in scores.items()])


def test_common_means_use_only_the_mixtures_every_row_scored():
    a = _per_mixture({"m0": 1.0, "m1": 2.0, "m2": 30.0, "m3": None})  # a row that skipped m3
    b = _per_mixture({"m0": 5.0, "m1": None, "m2": 7.0, "m3": 9.0})   # one that skipped its hard m1
    means, n = common_means([a, b])
    assert n == 2  # m0 and m2
    assert means[0]["sdr"] == pytest.approx(15.5) and means[1]["sdr"] == pytest.approx(6.0)
    means, n = common_means([a, _per_mixture({"m3": 1.0})])
    assert n == 0 and means[0]["sdr"] != means[0]["sdr"]  # NaN, not a mean over nothing


def test_separation_table_reports_both_protocols(tmp_path):
    for name, scores in {"x": {"m0": 1.0, "m1": -20.0}, "y": {"m0": 3.0, "m1": None}}.items():
        df = _per_mixture(scores)
        df.to_parquet(tmp_path / f"{name}.parquet")
        ok = df[df["status"] == "scored"]
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "n_scored": len(ok), "n_skipped": len(df) - len(ok), "sdr": ok["sdr"].mean(), "sir": ok["sir"].mean(),
            "sar": ok["sar"].mean(), "dataset": "d", "visual_weights": "random-init"}))
    t = separation_table([tmp_path / "x.json", tmp_path / "y.json"], ["X", "Y"], [tmp_path / "x.parquet", tmp_path / "y.parquet"])
    assert list(t["SDR"]) == [pytest.approx(-9.5), pytest.approx(3.0)]  # the reference protocol: Y looks better
    assert list(t["SDR_common"]) == [pytest.approx(1.0), pytest.approx(3.0)] and list(t["n_common"]) == [1, 1]

"""What DVC reads: a table's numbers as metrics JSON, training curves and per-instrument SDR as plot files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from avsep.reporting import tracking


def _csv(path, **cols):
    pd.DataFrame(cols).to_csv(path, index=False)
    return path


def test_table_metrics_keys_rows_by_method_and_keeps_numeric_cells(tmp_path):
    t = _csv(
        tmp_path / "table1.csv",
        method=["Sound-of-Pixels", "RPCA"], SDR=[3.29, float("nan")], SIR=[7.44, 1.5],
        dataset=["synth-music", "synth-music"], n_mixtures=[48, 47],
    )
    out = tmp_path / "metrics/table1.json"
    tracking.write_table_metrics(t, out)
    assert json.loads(out.read_text()) == {
        "Sound-of-Pixels": {"SDR": 3.29, "SIR": 7.44, "n_mixtures": 48.0},
        "RPCA": {"SDR": None, "SIR": 1.5, "n_mixtures": 47.0},  # an empty cell is null, not NaN
    }


def test_table_metrics_joins_text_columns_when_the_first_repeats(tmp_path):
    t = _csv(tmp_path / "t.csv", method=["LAVSS", "LAVSS", "Mix"], ear=["left", "right", "left"], SDR=[1.0, 2.0, 0.5])
    assert tracking.table_metrics(t) == {
        "LAVSS / left": {"SDR": 1.0}, "LAVSS / right": {"SDR": 2.0}, "Mix / left": {"SDR": 0.5}
    }
    dup = _csv(tmp_path / "dup.csv", method=["A", "A"], SDR=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"dup\.csv: rows are not unique.*A"):
        tracking.table_metrics(dup)
    text = _csv(tmp_path / "text.csv", method=["A"], dataset=["x"])
    with pytest.raises(ValueError, match=r"text\.csv: no numeric column"):
        tracking.table_metrics(text)


def test_table_plots_write_curves_and_mean_sdr_per_instrument(tmp_path):
    log = _csv(tmp_path / "train_log.csv", step=[1, 2, 3], loss=[0.7, 0.6, 0.5], lr=[0.001] * 3, seconds=[1.0, 2.0, 3.0])
    per_mix = tmp_path / "sop.parquet"
    pd.DataFrame(
        {
            "mixture_id": ["m0", "m1", "m2"],
            "labels": ["cello,flute", "flute,tuba", "cello,tuba"],
            "status": ["scored", "scored", "skipped"],
            "sdr_0": [2.0, 4.0, float("nan")],
            "sdr_1": [6.0, 1.0, float("nan")],
        }
    ).to_parquet(per_mix)
    out = tmp_path / "plots/table1"
    tracking.write_table_plots(out, {"sop": log}, {"sop": per_mix, "rpca": per_mix}, num_sources=2)

    curve = pd.read_csv(out / "train_loss/sop.csv")
    assert list(curve.columns) == ["step", "loss", "lr"]
    assert curve["loss"].tolist() == [0.7, 0.6, 0.5]
    sdr = pd.read_csv(out / "sdr_by_instrument/sop.csv").set_index("instrument")["sdr"].to_dict()
    # cello: 2.0 (m0); flute: 6.0 (m0) and 4.0 (m1); tuba: 1.0 (m1); the skipped m2 counts for nothing.
    assert sdr == {"cello": 2.0, "flute": 5.0, "tuba": 1.0}
    assert sorted(p.name for p in (out / "sdr_by_instrument").iterdir()) == ["rpca.csv", "sop.csv"]


def test_table_plots_fail_naming_the_file_and_leave_nothing(tmp_path):
    bad = _csv(tmp_path / "train_log.csv", step=[1], loss=[0.5])
    out = tmp_path / "plots/table1"
    with pytest.raises(ValueError, match=r"train_log\.csv: training log lacks column\(s\) lr"):
        tracking.write_table_plots(out, {"sop": bad}, {}, num_sources=2)
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="missing.csv: training log missing"):
        tracking.write_table_plots(out, {"sop": tmp_path / "missing.csv"}, {}, num_sources=2)

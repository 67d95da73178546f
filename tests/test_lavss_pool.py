"""FAIR-Play as LAVSS uses it: labels and solo/duet from the detections, the seeded 728/103/208 split, the clip
pool LAVSS draws from (``lavss.labels``, ``lavss.split``) and the duet list."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import default_params

from avsep.config.params import ConfigError, Params
from avsep.data.binaural_mixtures import (
    DUET_COLUMNS,
    PAPER_SPLIT,
    LAVSSSampler,
    clip_pool,
    duet_list,
    eligible_clips,
    make_mixture_list,
    scaled_counts,
    seeded_split,
)  # fmt: skip
from avsep.data.boxes import BoxSource
from avsep.data.mixtures import Crop
from avsep.detection.labels import (
    FAIRPLAY_INSTRUMENTS,
    OIV7_GENERIC,
    OIV7_INSTRUMENTS,
    detected_label,
    instrument_names,
)  # fmt: skip
from avsep.detection.objects import confident_boxes, label_clip, label_clips
from avsep.stages.lavss import lavss_clips

FAIRPLAY = instrument_names("fairplay", ["fairplay"])
LEFT = (0.05, 0.3, 0.35, 0.8)
RIGHT = (0.6, 0.3, 0.9, 0.8)


def boxes(*objects: tuple[str, tuple[float, ...], float, list[int]], clip: str = "c") -> pd.DataFrame:
    """``boxes.parquet`` rows: per object (class, box, score, frames it is seen in)."""
    rows = [{"clip": clip, "frame": f, "time": (f - 1) / 8, "class": cls, "score": score, "x1": b[0], "y1": b[1],
             "x2": b[2], "y2": b[3], "instrument": cls != "Person"}
            for cls, b, score, frames in objects for f in frames]
    return pd.DataFrame(rows)


FRAMES = list(range(1, 21, 2))  # 10 detected frames


# ---------------------------------------------------------------------------------------------- the labelling rule


def test_a_solo_clip_is_labelled_with_its_most_confident_class():
    b = boxes(("Guitar", LEFT, 0.97, FRAMES), ("Person", RIGHT, 0.99, FRAMES),  # a person is no instrument
              ("Cello", (0.08, 0.3, 0.38, 0.8), 0.93, FRAMES))  # the same object as another class: IoU 0.82 > 0.7
    kept = confident_boxes(b)
    assert len(kept) == 10 and set(kept["class"]) == {"Guitar"}
    assert len(confident_boxes(b, nms_iou=0.9)) == 20 and len(confident_boxes(b, min_score=0.95)) == 10
    s, objs = label_clip(b, len(FRAMES), FAIRPLAY)
    assert (s["status"], s["kind"], s["label"], s["labels"], s["frames_two"]) == ("ok", "solo", "guitar", "guitar", 0)
    assert list(objs["rank"]) == [1] and objs["class"].iloc[0] == "Guitar" and objs["frames_seen"].iloc[0] == 10
    assert objs["median_cx"].iloc[0] == pytest.approx(0.2)  # the dropped cello boxes (centre 0.23) do not count


def test_a_duet_has_two_confident_objects_in_enough_frames():
    b = boxes(("Cello", LEFT, 0.95, FRAMES), ("Guitar", RIGHT, 0.98, FRAMES[:6]))
    s, objs = label_clip(b, len(FRAMES), FAIRPLAY)
    # the guitar is the most confident detection: object 1 and the clip's label
    assert (s["kind"], s["label"], s["labels"], s["frames_two"]) == ("duet", "guitar", "guitar cello", 6)
    assert s["two_fraction"] == pytest.approx(0.6)
    assert list(objs["label"]) == ["guitar", "cello"] and list(objs["median_cx"]) == pytest.approx([0.75, 0.2])
    # two objects of one class side by side are a duet too (objects are told apart by position)
    s2, _ = label_clip(boxes(("Guitar", LEFT, 0.95, FRAMES), ("Guitar", RIGHT, 0.96, FRAMES)), 10, FAIRPLAY)
    assert (s2["kind"], s2["labels"]) == ("duet", "guitar guitar")


@pytest.mark.parametrize("second, why", [
    (("Cello", RIGHT, 0.6, FRAMES), "below min_score in every frame"),
    (("Cello", RIGHT, 0.95, FRAMES[:4]), "confident in 4 of 10 frames < duet_fraction 0.5"),
    (("Cello", (0.08, 0.32, 0.36, 0.8), 0.95, FRAMES), "the same place as object 1 (IoU > 0.7): the same object"),
])
def test_a_weak_or_rare_second_object_leaves_a_solo(second, why):
    s, _ = label_clip(boxes(("Guitar", LEFT, 0.97, FRAMES), second), len(FRAMES), FAIRPLAY)
    assert (s["kind"], s["label"]) == ("solo", "guitar"), why
    # a lower threshold or fraction turns the first two cases into duets: the rule, not the data, decided
    if second[1] == RIGHT:
        s_low, _ = label_clip(boxes(("Guitar", LEFT, 0.97, FRAMES), second), len(FRAMES), FAIRPLAY, min_score=0.5,
                              duet_fraction=0.4)
        assert s_low["kind"] == "duet"


def test_no_confident_instrument_fails_with_the_reason():
    s, objs = label_clip(boxes(("Guitar", LEFT, 0.85, FRAMES), ("Person", RIGHT, 0.99, FRAMES)), 10, FAIRPLAY)
    assert s["status"] == "failed" and "no instrument box with score > 0.9 in 10 frame(s)" in s["reason"] and objs.empty


def test_oiv7_classes_map_to_fairplay_names_and_never_to_ukulele_or_upright_bass():
    assert FAIRPLAY == FAIRPLAY_INSTRUMENTS and "fairplay" not in FAIRPLAY
    got = {c: detected_label(c, FAIRPLAY) for c in (*OIV7_INSTRUMENTS, OIV7_GENERIC)}
    assert {c: got[c] for c in ("Guitar", "Cello", "Drum", "Piano", "Trumpet", "Banjo", "Harp")} == {
        "Guitar": "guitar", "Cello": "cello", "Drum": "drum", "Piano": "piano", "Trumpet": "trumpet", "Banjo": "banjo",
        "Harp": "harp",
    }  # fmt: skip
    assert got["Violin"] == "violin" and got["French horn"] == "french_horn"  # no FAIR-Play name: the class itself
    assert got[OIV7_GENERIC] == "musical_instrument"  # not the one label without a class (upright_bass)
    assert not {"ukulele", "upright_bass"} & set(got.values())
    # other vocabularies: the synthetic stand-in's and MUSIC-21's guitar; a trained detector's classes are the labels
    assert detected_label("Guitar", instrument_names("synth", ["acoustic_guitar", "cello"])) == "acoustic_guitar"
    assert detected_label("Guitar", ["acoustic_guitar", "electric_bass", "ukulele"]) == "acoustic_guitar"
    assert detected_label("acoustic_guitar", ["acoustic_guitar", "cello"]) == "acoustic_guitar"


def test_label_clips_keeps_detection_failures_and_refuses_a_label_on_another_objects_box():
    b = pd.concat([boxes(("Guitar", LEFT, 0.97, FRAMES), clip="a"), boxes(("Cello", RIGHT, 0.99, FRAMES),
                   ("Guitar", LEFT, 0.7, FRAMES), clip="b")], ignore_index=True)
    objects = pd.DataFrame({
        "clip": ["a", "b", "c"], "rank": 1, "status": ["ok", "ok", "failed"], "reason": ["", "", "extract failed: x"],
        "n_frames": [10, 10, 0], "x1": [LEFT[0], LEFT[0], np.nan], "y1": [LEFT[1], LEFT[1], np.nan],
        "x2": [LEFT[2], LEFT[2], np.nan], "y2": [LEFT[3], LEFT[3], np.nan],
    })
    clips, objs = label_clips(b, objects, FAIRPLAY)
    c = clips.set_index("clip")
    assert c.loc["a", "status"] == "ok" and c.loc["a", "label"] == "guitar"
    # b: objects.parquet ranked the left guitar first (a metadata match), the labelled object is the right cello
    assert c.loc["b", "status"] == "failed" and "rank-1 object" in c.loc["b", "reason"]
    assert c.loc["c", "status"] == "failed" and c.loc["c", "reason"] == "detection: extract failed: x"
    assert label_clips(b, objects, FAIRPLAY, check_objects=False)[0].set_index("clip").loc["b", "label"] == "cello"
    assert set(objs["clip"]) == {"a", "b"}


# ---------------------------------------------------------------------------------------------- the seeded split


def test_seeded_split_is_the_papers_728_103_208_deterministic_and_disjoint():
    ids = [f"{i:06d}" for i in range(1, 1040)]
    s = seeded_split(ids, 1234)
    counts = pd.Series(s).value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == PAPER_SPLIT
    assert sorted(s) == ids  # every clip once: the three sets are disjoint and cover the pool
    assert seeded_split(list(reversed(ids)), 1234) == s  # a function of the set of ids and the seed
    other = seeded_split(ids, 1235)
    assert other != s and pd.Series(other).value_counts()["test"] == 208
    test = {i for i, v in s.items() if v == "test"}
    assert 125 < len(test & {i for i in ids if int(i) <= 728}) < 168  # random (146 expected), not the first or last ids
    assert scaled_counts(PAPER_SPLIT, 45) == (32, 4, 9) and scaled_counts(PAPER_SPLIT, 1039) == PAPER_SPLIT
    assert sum(scaled_counts(PAPER_SPLIT, 7)) == 7


# ---------------------------------------------------------------------------------------------- the clip pool


def _fairplay_like() -> tuple[pd.DataFrame, pd.DataFrame, BoxSource]:
    """Six FAIR-Play-like clips (metadata label `fairplay`), their detection result and boxes."""
    ids = [f"00000{i}" for i in range(1, 7)]
    manifest = pd.DataFrame({
        "id": ids, "status": ["ok"] * 5 + ["failed"], "reason": [""] * 5 + ["silent audio"], "label": "fairplay",
        "split": ["train", "train", "test", "test", "train", "test"], "n_samples": 80000, "n_frames": 80,
    })
    detected = pd.DataFrame({
        "clip": ids[:5], "status": ["ok", "ok", "ok", "ok", "failed"], "reason": ["", "", "", "", "no instrument box"],
        "kind": ["solo", "solo", "solo", "duet", ""], "label": ["guitar", "cello", "guitar", "cello", None],
        "labels": ["guitar", "cello", "guitar", "cello guitar", None],
        "n_frames": 40, "frames_two": [0, 0, 0, 30, 0], "two_fraction": [0, 0, 0, 0.75, 0],
    })
    tracks = {c: (np.zeros(1), np.array([[0.1, 0.2, 0.4, 0.8]]), np.ones(1)) for c in ids}
    box_src = BoxSource("detected", tracks, {c: 0.25 + 0.1 * k for k, c in enumerate(ids)}, 8.0, "test")
    return manifest, detected, box_src


def test_detected_labels_replace_the_placeholder_and_duets_leave_the_pool():
    manifest, detected, box_src = _fairplay_like()
    crop = Crop(65535, 11025, 8.0, 1)
    # today's problem: every clip is `fairplay`, so LAVSS cannot mix two instruments
    with pytest.raises(ValueError, match="at least 2 labels"):
        LAVSSSampler(eligible_clips(manifest, "train", box_src, crop.clip_samples), 0, crop, (0.5, 1.5))
    pool = clip_pool(manifest, "detected", "dataset", detected)
    p = pool.set_index("id")
    assert list(p["status"]) == ["ok", "ok", "ok", "failed", "failed", "failed"]
    assert p.loc["000004", "reason"] == "duet (cello guitar): listed in duets.parquet"
    assert p.loc["000005", "reason"] == "detection: no instrument box"
    assert p.loc["000006", "reason"] == "extract failed: silent audio"
    train = eligible_clips(manifest, "train", box_src, crop.clip_samples, pool)
    assert list(train["id"]) == ["000001", "000002"] and list(train["label"]) == ["guitar", "cello"]
    assert list(train["cx"]) == pytest.approx([0.25, 0.35])
    LAVSSSampler(train, 0, crop, (0.5, 1.5))  # two instruments now
    test = eligible_clips(manifest, "test", box_src, crop.clip_samples, pool)
    assert list(test["id"]) == ["000003"]  # the duet 000004 is a test clip of the dataset, not in the pool
    # metadata: today's behaviour, every ok clip with its metadata label
    meta = eligible_clips(manifest, "train", box_src, crop.clip_samples, clip_pool(manifest, "metadata", "dataset"))
    assert meta.equals(eligible_clips(manifest, "train", box_src, crop.clip_samples))


def test_a_seeded_pool_splits_only_the_solo_clips_and_the_mixture_lists_follow_it():
    manifest, detected, box_src = _fairplay_like()
    pool = clip_pool(manifest, "detected", "seeded", detected, seed=3, counts=(1, 0, 2))
    ok = pool[pool["status"] == "ok"]
    assert sorted(ok["split"]) == ["test", "test", "train"] and (pool["dataset_split"] == manifest["split"]).all()
    assert pool.loc[pool["status"] == "ok", "split"].equals(
        clip_pool(manifest, "detected", "seeded", detected, seed=3, counts=(1, 0, 2)).loc[ok.index, "split"])
    pool = pool.assign(split=pool["split"].where(pool["id"] != "000003", "test"))
    pool.loc[pool["id"] == "000002", "split"] = "test"  # a guitar and a cello in test
    lst = make_mixture_list(manifest, box_src, "different", 4, 0, Crop(65535, 11025, 8.0, 1), 0.2, pool=pool)
    assert set(lst["label_0"]) | set(lst["label_1"]) == {"guitar", "cello"} and (lst["label_0"] != lst["label_1"]).all()


def test_duet_list_has_both_objects_with_label_box_and_side():
    manifest, detected, _ = _fairplay_like()
    objs = pd.DataFrame({
        "clip": ["000004", "000004", "000001"], "rank": [1, 2, 1], "label": ["cello", "guitar", "guitar"],
        "class": ["Cello", "Guitar", "Guitar"], "score": [0.99, 0.95, 0.97], "frame": [3, 5, 1],
        "x1": [0.6, 0.05, 0.1], "y1": 0.3, "x2": [0.9, 0.35, 0.4], "y2": 0.8, "cx": [0.75, 0.2, 0.25], "cy": 0.55,
        "frames_seen": [40, 30, 40], "median_cx": [0.74, 0.21, 0.25], "median_cy": 0.55,
    })
    d = duet_list(manifest, detected, objs)
    assert list(d.columns) == list(DUET_COLUMNS) and list(d["clip"]) == ["000004", "000004"]
    assert list(d["label"]) == ["cello", "guitar"] and list(d["side"]) == ["right", "left"]
    assert (d["labels"] == "cello guitar").all() and (d["dataset_split"] == "test").all()
    assert duet_list(manifest, None, None).empty


def test_the_stage_writes_pool_and_duets_from_the_detection_files(tmp_path):
    raw = default_params()
    p = Params(raw)
    ids = ["synth-fairplay-cello-test-000", "synth-fairplay-drum-test-000", "synth-fairplay-drum-train-000"]
    pd.DataFrame({"id": ids, "status": "ok", "reason": "", "label": ["cello", "drum", "drum"],
                  "split": ["test", "test", "train"], "n_samples": 88200, "n_frames": 64,
                  }).to_parquet(tmp_path / "manifest.parquet")
    b = pd.concat([boxes(("cello", LEFT, 0.95, FRAMES), clip=ids[0]),  # detected as what the renderer drew
                   boxes(("cello", RIGHT, 0.96, FRAMES), clip=ids[1]),  # a drum clip the detector calls a cello
                   boxes(("drum", LEFT, 0.97, FRAMES), ("drum", RIGHT, 0.95, FRAMES), clip=ids[2])], ignore_index=True)
    b.to_parquet(tmp_path / "boxes.parquet")
    first = b.sort_values("score", ascending=False).groupby("clip").head(1).set_index("clip").loc[ids]
    pd.DataFrame({"clip": ids, "rank": 1, "status": "ok", "reason": "", "n_frames": 10, **{
        c: first[c].to_numpy() for c in ("x1", "y1", "x2", "y2")}}).to_parquet(tmp_path / "objects.parquet")
    pool = lavss_clips(p, tmp_path / "manifest.parquet", [str(tmp_path / "objects.parquet"), str(tmp_path / "boxes.parquet")],
                       tmp_path / "clips.parquet", tmp_path / "duets.parquet")
    assert pd.read_parquet(tmp_path / "clips.parquet").equals(pool)
    assert list(pool["label"]) == ["cello", "cello", "drum"]  # the detector's label, not the renderer's
    assert list(pool["status"]) == ["ok", "ok", "failed"] and list(pool["metadata_label"]) == ["cello", "drum", "drum"]
    duets = pd.read_parquet(tmp_path / "duets.parquet")
    assert list(duets["clip"]) == [ids[2]] * 2 and list(duets["side"]) == ["left", "right"]
    # metadata labels: the renderer's labels, every clip, no duet list
    raw2 = copy.deepcopy(raw)
    raw2["lavss"]["labels"] = "metadata"
    pool2 = lavss_clips(Params(raw2), tmp_path / "manifest.parquet", [], tmp_path / "c2.parquet", tmp_path / "d2.parquet")
    assert list(pool2["label"]) == ["cello", "drum", "drum"] and (pool2["status"] == "ok").all()
    assert pd.read_parquet(tmp_path / "d2.parquet").empty


# ---------------------------------------------------------------------------------------------- config


def test_the_pool_switches_are_typed_with_the_papers_defaults():
    lp = Params(default_params()).lavss
    assert (lp.labels, lp.seeded_split) == ("detected", PAPER_SPLIT)
    assert (lp.detected_labels.min_score, lp.detected_labels.nms_iou) == (0.9, 0.7)


@pytest.mark.parametrize("change, key", [
    (lambda r: r["detect"].update(datasets=["synth-music"]), r"lavss\.labels=detected .* detect\.datasets"),
    (lambda r: r["lavss"].update(split="seeded", seeded_split=[0, 10, 10]), r"lavss\.seeded_split"),
    (lambda r: r["lavss"].update(labels="detected_by_hand"), r"lavss\.labels"),
    (lambda r: r["lavss"].update(seeded_split=[728, 103]), r"lavss\.seeded_split"),
    (lambda r: r["lavss"]["detected_labels"].update(min_scor=0.5), r"lavss\.detected_labels\.min_scor"),
])
def test_pool_config_errors_name_the_key(change, key):
    raw = default_params()
    change(raw)
    if raw["lavss"]["boxes"] == "detected" and "synth-fairplay" not in raw["detect"]["datasets"]:
        raw["lavss"]["boxes"] = "ground_truth"  # so that only lavss.labels needs the detection stage
    with pytest.raises(ConfigError, match=key):
        _ = Params(raw).lavss

"""Tests of the detection stage: a YOLO trained offline on a tiny drawn set, class mapping, per-clip objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from avsep.core.io import STATUS_FAILED, STATUS_OK, write_parquet
from avsep.core.weights import weights_label
from avsep.data.boxes import box_iou
from avsep.detection.dataset import make_yolo_dataset, match_boxes
from avsep.detection.labels import OIV7_GENERIC, class_labels, oiv7_class
from avsep.detection.objects import BOX_COLUMNS, detect_dataset, summarize_clip, top_objects
from avsep.detection.train import evaluate_detector, train_detector
from avsep.detection.yolo import DetectConfig, DetectTrainConfig, load_yolo, ultralytics_env

SIZE = 64
EXTRACT_FPS = 8.0
VIDEO_FPS = 16.0
#: Two easy classes: a red square and a blue disc.
LOOKS = {"cello": ((220, 40, 40), "square"), "violin": ((40, 80, 230), "disc")}


# ------------------------------------------------------------------------------------------------
# A tiny synthetic set: raw/boxes.parquet at VIDEO_FPS, extract/frames/{id}/*.jpg at EXTRACT_FPS
# ------------------------------------------------------------------------------------------------


def _track(gen: np.random.Generator, n: int) -> np.ndarray:
    """Per video frame (x1, y1, x2, y2) in pixels: a square-ish object drifting across the frame."""
    side = gen.uniform(16, 26)
    start = gen.uniform(2, SIZE - side - 2, size=2)
    end = gen.uniform(2, SIZE - side - 2, size=2)
    t = np.linspace(0, 1, n)[:, None]
    tl = start + (end - start) * t
    return np.concatenate([tl, tl + side], axis=1)


def make_tiny_set(root: Path, clips: dict[str, int], n_frames: int, seed: int = 0) -> Path:
    """Render clips of LOOKS into ``root``; return the extract manifest. Boxes are at twice the frame rate."""
    gen = np.random.default_rng(seed)
    rows, boxes = [], []
    n_video = 2 * n_frames
    for label, (color, shape) in LOOKS.items():
        for split, n in clips.items():
            for i in range(n):
                cid = f"tiny-{label}-{split}-{i:03d}"
                track = _track(gen, n_video)
                bg = tuple(int(v) for v in gen.integers(90, 160, size=3))
                fdir = root / "extract" / "frames" / cid
                fdir.mkdir(parents=True)
                for k in range(n_frames):
                    x1, y1, x2, y2 = track[2 * k]  # extracted frame k+1 is at time k / 8 s = video frame 2k
                    im = Image.new("RGB", (SIZE, SIZE), bg)
                    d = ImageDraw.Draw(im)
                    (d.rectangle if shape == "square" else d.ellipse)([x1, y1, x2 - 1, y2 - 1], fill=color)
                    im.save(fdir / f"{k + 1:06d}.jpg", quality=95)
                norm = track / SIZE
                boxes.append(pd.DataFrame({
                    "id": cid, "instance": 0, "frame": np.arange(n_video), "time": np.arange(n_video) / VIDEO_FPS,
                    "label": label, "x1": norm[:, 0], "y1": norm[:, 1], "x2": norm[:, 2], "y2": norm[:, 3],
                }))
                rows.append({"id": cid, "status": STATUS_OK, "reason": "", "label": label, "split": split,
                             "instances": 1, "frames": f"frames/{cid}"})
    write_parquet(pd.concat(boxes, ignore_index=True), root / "raw" / "boxes.parquet")
    manifest = root / "extract" / "manifest.parquet"
    write_parquet(pd.DataFrame(rows), manifest)
    return manifest


def _truth(root: Path) -> pd.DataFrame:
    """Ground truth box of every extracted frame (time-matched), keyed by (clip, frame)."""
    b = pd.read_parquet(root / "raw" / "boxes.parquet")
    b = b[b["frame"] % 2 == 0].assign(frame=lambda d: d["frame"] // 2 + 1)
    return b.rename(columns={"id": "clip"}).set_index(["clip", "frame"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(root, extract manifest, weights) of a YOLO trained for a few epochs on the tiny set."""
    root = tmp_path_factory.mktemp("tiny")
    manifest = make_tiny_set(root, {"train": 6, "test": 2}, n_frames=12)
    report = make_yolo_dataset(manifest, root / "raw" / "boxes.parquet", root / "yolo", EXTRACT_FPS, stride=1)
    assert (report["status"] == STATUS_OK).all()
    # Small batches (more steps) and no mosaic (it shrinks 64 px objects): reliable in about 20 s of CPU.
    cfg = DetectTrainConfig(model="yolov8n.yaml", epochs=8, imgsz=SIZE, batch=4, lr0=0.002, close_mosaic=8, seed=0,
                            threads=1)
    weights = train_detector(root / "yolo" / "data.yaml", cfg, root / "weights.pt", root / "run",
                             config_dir=root / "yolo-config")
    return root, manifest, weights


# ------------------------------------------------------------------------------------------------
# Training and inference
# ------------------------------------------------------------------------------------------------


def test_yolo_dataset_matches_boxes_by_time(tmp_path: Path) -> None:
    manifest = make_tiny_set(tmp_path, {"train": 1, "test": 1}, n_frames=4)
    report = make_yolo_dataset(manifest, tmp_path / "raw" / "boxes.parquet", tmp_path / "yolo", EXTRACT_FPS, stride=2)
    assert report.set_index("id")["images"].to_dict() == {
        "tiny-cello-train-000": 2, "tiny-cello-test-000": 2, "tiny-violin-train-000": 2, "tiny-violin-test-000": 2,
    }
    truth = _truth(tmp_path)
    lab = (tmp_path / "yolo" / "labels" / "val" / "tiny-violin-test-000_000003.txt").read_text().split()
    cls, cx, cy, w, h = int(lab[0]), *map(float, lab[1:])
    t = truth.loc[("tiny-violin-test-000", 3)]
    assert cy == pytest.approx((t.y1 + t.y2) / 2, abs=1e-5) and h == pytest.approx(t.y2 - t.y1, abs=1e-5)
    assert cls == 1  # classes sorted: cello, violin
    assert cx == pytest.approx((t.x1 + t.x2) / 2, abs=1e-5) and w == pytest.approx(t.x2 - t.x1, abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "yolo" / "images" / "train").iterdir())[:2] == [
        "tiny-cello-train-000_000001.jpg", "tiny-cello-train-000_000003.jpg",
    ]
    assert (tmp_path / "yolo" / "data.yaml").read_text().count(":") >= 4


def test_match_boxes_uses_time_not_frame_index() -> None:
    frames = pd.DataFrame({"id": ["a", "a"], "frame": [1, 2], "time": [0.0, 0.125]})
    boxes = pd.DataFrame({"id": "a", "instance": 0, "frame": [0, 1, 2, 3], "time": [0.0, 0.0625, 0.125, 0.1875],
                          "x1": [0.0, 0.1, 0.2, 0.3], "y1": 0.0, "x2": 0.5, "y2": 0.5})
    m = match_boxes(frames, boxes, tolerance=0.5 / VIDEO_FPS)
    assert m["x1"].tolist() == [0.0, 0.2]
    far = pd.DataFrame({"id": ["a"], "frame": [9], "time": [1.0]})
    assert match_boxes(far, boxes, tolerance=0.5 / VIDEO_FPS).empty


@pytest.mark.slow
def test_trained_detector_finds_the_objects(trained: tuple[Path, Path, Path]) -> None:
    root, manifest, weights = trained
    model = load_yolo(weights)
    assert sorted(model.names.values()) == ["cello", "violin"]
    cfg = DetectConfig(imgsz=SIZE, conf=0.05, frame_stride=1, fps=EXTRACT_FPS)
    boxes, objects = detect_dataset(manifest, model, cfg, root / "det" / "boxes.parquet", root / "det" / "objects.parquet",
                                    weights=weights_label(weights), show_progress=False)
    assert list(boxes.columns) == list(BOX_COLUMNS)
    assert boxes[["x1", "y1", "x2", "y2"]].stack().between(0, 1).all()
    truth = _truth(root)
    # Held-out clips: the top box of every frame overlaps the truth and has the right class.
    held = boxes[boxes["clip"].str.contains("-test-")]
    top = held.sort_values("score", ascending=False).groupby(["clip", "frame"]).head(1).set_index(["clip", "frame"])
    n_frames = truth.index.get_level_values("clip").str.contains("-test-").sum()
    assert len(top) >= 0.9 * n_frames
    t = truth.loc[top.index]
    iou = np.diag(box_iou(top[["x1", "y1", "x2", "y2"]].to_numpy(), t[["x1", "y1", "x2", "y2"]].to_numpy()))
    assert (iou > 0.5).mean() >= 0.8, f"IoU of the top boxes: {np.round(iou, 2)}"
    assert (top["class"] == t["label"]).mean() >= 0.8
    # Per clip: one ok object whose position is where the object was.
    held_obj = objects[objects["clip"].str.contains("-test-")].set_index("clip")
    assert (held_obj["status"] == STATUS_OK).all() and (held_obj["rank"] == 1).all()
    for clip, o in held_obj.iterrows():
        g = truth.loc[clip].loc[int(o["frame"])]
        assert abs(o["cx"] - (g.x1 + g.x2) / 2) < 0.1 and abs(o["cy"] - (g.y1 + g.y2) / 2) < 0.1
    assert pd.read_parquet(root / "det" / "objects.parquet").equals(objects)


@pytest.mark.slow
def test_detector_report_scores_the_held_out_frames(trained: tuple[Path, Path, Path]) -> None:
    root, _, weights = trained
    m = evaluate_detector(weights, root / "yolo" / "data.yaml", imgsz=SIZE, config_dir=root / "yolo-config")
    assert m["images"] == 2 * 2 * 12 and m["instances"] == m["images"]
    assert 0.5 < m["mAP50"] <= 1.0 and m["mAP50_95"] <= m["mAP50"]


def test_ultralytics_env_provides_fonts_and_turns_off_sync(tmp_path: Path) -> None:
    u = ultralytics_env(tmp_path / "cfg")
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    assert u.__name__ == "ultralytics"
    assert (Path(USER_CONFIG_DIR) / "Arial.ttf").stat().st_size > 10_000
    assert SETTINGS["sync"] is False and SETTINGS["dvc"] is False


# ------------------------------------------------------------------------------------------------
# Class names
# ------------------------------------------------------------------------------------------------


def test_oiv7_mapping() -> None:
    assert oiv7_class("acoustic_guitar") == "Guitar"
    assert oiv7_class("cello") == "Cello" and oiv7_class("French horn") == "French horn"
    for generic in ("tuba", "clarinet", "xylophone", "erhu"):
        assert oiv7_class(generic) == OIV7_GENERIC
    names = {0: "Person", 1: "Guitar", 2: "Musical instrument", 3: "Violin", 4: "Drum"}
    m = class_labels(names, ["acoustic_guitar", "violin", "tuba", "erhu", "cello"])
    assert m == {"Person": (), "Guitar": ("acoustic_guitar",), "Musical instrument": ("erhu", "tuba"),
                 "Violin": ("violin",), "Drum": ("Drum",)}
    # A detector trained on the dataset: its classes are the labels.
    assert class_labels(["cello", "violin"], ["violin", "cello"]) == {"cello": ("cello",), "violin": ("violin",)}


# ------------------------------------------------------------------------------------------------
# Per-clip objects
# ------------------------------------------------------------------------------------------------


def _box(frame: int, cls: str, score: float, x1: float, y1: float, x2: float, y2: float) -> dict[str, object]:
    return {"frame": frame, "time": (frame - 1) / 8, "class": cls, "score": score, "x1": x1, "y1": y1, "x2": x2, "y2": y2}


HAND_BOXES = pd.DataFrame([
    _box(1, "Violin", 0.60, 0.10, 0.20, 0.30, 0.60),
    _box(2, "Violin", 0.90, 0.12, 0.20, 0.32, 0.60),  # the same violin, best frame
    _box(3, "Violin", 0.70, 0.14, 0.22, 0.34, 0.62),
    _box(2, "Flute", 0.80, 0.60, 0.30, 0.90, 0.40),   # a second instrument, right
    _box(1, "Person", 0.99, 0.00, 0.00, 1.00, 1.00),  # not an instrument
    _box(3, "Flute", 0.50, 0.62, 0.31, 0.92, 0.41),
])
OIV7_NAMES = {0: "Person", 1: "Violin", 2: "Flute", 3: "Musical instrument"}


def test_top_objects_skips_the_same_object_in_other_frames() -> None:
    inst = HAND_BOXES[HAND_BOXES["class"] != "Person"]
    top = top_objects(inst, k=2)
    assert top["class"].tolist() == ["Violin", "Flute"] and top["frame"].tolist() == [2, 2]
    assert top["cx"].tolist() == pytest.approx([0.22, 0.75])
    assert top["frames_seen"].tolist() == [3, 2]
    assert top["median_cx"].tolist() == pytest.approx([0.22, 0.76])


def test_summary_solo_and_duet() -> None:
    labels_of = class_labels(OIV7_NAMES, ["violin", "flute"])
    solo = summarize_clip({"id": "v1", "status": "ok", "label": "violin", "split": "test"}, HAND_BOXES, labels_of, 3)
    assert solo[["rank", "status", "class", "matched"]].values.tolist() == [[1, "ok", "Violin", True]]
    assert solo["cx"].iloc[0] == pytest.approx(0.22) and solo["cy"].iloc[0] == pytest.approx(0.40)
    duet = summarize_clip({"id": "d1", "status": "ok", "label": "flute violin", "split": "test"}, HAND_BOXES, labels_of, 3)
    assert duet["class"].tolist() == ["Violin", "Flute"] and (duet["status"] == STATUS_OK).all()
    assert duet["rank"].tolist() == [1, 2]
    # A synthetic clip with two instances but only one object found: a failed second row with the reason.
    one = HAND_BOXES[HAND_BOXES["class"] == "Violin"]
    pair = summarize_clip({"id": "s1", "status": "ok", "label": "violin", "instances": 2}, one, labels_of, 3)
    assert pair["status"].tolist() == [STATUS_OK, STATUS_FAILED]
    assert "only 1 distinct object" in pair["reason"].iloc[1]
    # A duet whose second instrument has no box of its class: the best other instrument, not matched.
    mixed = summarize_clip({"id": "d2", "label": "cello violin"}, HAND_BOXES, class_labels(OIV7_NAMES, ["violin", "cello"]), 3)
    assert mixed[["class", "matched"]].values.tolist() == [["Violin", True], ["Flute", False]]
    # A clip whose own instrument is not seen falls back to any instrument box (matched=False).
    other = summarize_clip({"id": "c1", "status": "ok", "label": "cello"}, HAND_BOXES, class_labels(OIV7_NAMES, ["cello"]), 3)
    assert other["status"].tolist() == [STATUS_OK] and not other["matched"].iloc[0]


def test_summary_failed_rows_name_the_reason() -> None:
    labels_of = class_labels(OIV7_NAMES, ["violin"])
    empty = HAND_BOXES.iloc[0:0]
    cases = {
        "extract failed: no audio stream": ({"id": "a", "status": "failed", "reason": "no audio stream"}, empty, 0),
        "no extracted frames": ({"id": "b", "status": "ok", "label": "violin"}, empty, 0),
        "nothing detected in 5 frame(s)": ({"id": "c", "status": "ok", "label": "violin"}, empty, 5),
        "no instrument detected in 3 frame(s) (classes seen: Person)": (
            {"id": "d", "status": "ok", "label": "violin"}, HAND_BOXES[HAND_BOXES["class"] == "Person"], 3),
    }
    for reason, (clip, boxes, n) in cases.items():
        rows = summarize_clip(clip, boxes, labels_of, n)
        assert rows[["status", "reason"]].values.tolist() == [[STATUS_FAILED, reason]]
        assert rows["cx"].isna().all()


class _NoBoxes:
    """A stand-in model that never detects anything (and must not be asked about clips without frames)."""

    def __init__(self) -> None:
        self.names = {0: "cello", 1: "violin"}
        self.calls = 0

    def predict(self, source: list[str], **_: object) -> list[object]:
        self.calls += 1
        return [type("R", (), {"boxes": None, "names": self.names})() for _ in source]


def test_detect_dataset_writes_failed_rows_for_empty_clips(tmp_path: Path) -> None:
    manifest = make_tiny_set(tmp_path, {"test": 1}, n_frames=3)
    m = pd.read_parquet(manifest)
    extra = pd.DataFrame([
        {"id": "gone", "status": STATUS_FAILED, "reason": "truncated file", "label": "cello", "split": "test",
         "instances": 1, "frames": None},
        {"id": "noframes", "status": STATUS_OK, "reason": "", "label": "cello", "split": "test", "instances": 1,
         "frames": "frames/noframes"},
    ])
    write_parquet(pd.concat([m, extra], ignore_index=True), manifest)
    model = _NoBoxes()
    cfg = DetectConfig(imgsz=SIZE, frame_stride=2, fps=EXTRACT_FPS)
    boxes, objects = detect_dataset(manifest, model, cfg, tmp_path / "b.parquet", tmp_path / "o.parquet", show_progress=False)
    assert boxes.empty and list(boxes.columns) == list(BOX_COLUMNS)
    assert model.calls == 2  # the two clips with frames
    reasons = objects.set_index("clip")["reason"].to_dict()
    assert reasons == {
        "tiny-cello-test-000": "nothing detected in 2 frame(s)",
        "tiny-violin-test-000": "nothing detected in 2 frame(s)",
        "gone": "extract failed: truncated file",
        "noframes": "no extracted frames",
    }
    assert (objects["status"] == STATUS_FAILED).all()
    assert pd.read_parquet(tmp_path / "o.parquet")["reason"].tolist() == objects["reason"].tolist()


def test_detect_config_from_params() -> None:
    from workflow_helpers import ROOT, default_params

    from avsep.config.params import ConfigError, Params, load_params

    cfg = DetectConfig.from_params(load_params(ROOT / "params.yaml"))
    assert cfg.uses_trained and cfg.train.model.endswith(".yaml") and cfg.fps == 8.0
    raw = default_params()
    raw["detect"]["datasets"] = ["synth-nope"]
    with pytest.raises(ConfigError, match="detect.datasets names unknown dataset 'synth-nope'"):
        Params(raw)
    raw = default_params()
    raw["detect"]["train"]["model"] = "yolov8n"
    with pytest.raises(ConfigError, match="detect.train.model"):
        Params(raw)

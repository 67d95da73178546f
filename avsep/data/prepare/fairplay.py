"""FAIR-Play import: split files -> clip table; video and audio tarballs -> raw clips with binaural audio.

FAIR-Play (github.com/facebookresearch/FAIR-Play, CC BY 4.0) is 1,871 clips published as three tarballs
(``http://dl.fbaipublicfiles.com/FAIR-Play/{videos,audios,splits}.tar.gz``): ``videos/000001.mp4``, ...,
``binaural_audios/000001.wav``, ... and ``splits/split1..10/{train,val,test}.h5``. Each h5 file lists wav
paths of the authors' machine; they are mapped by **file name** (:func:`parse_fairplay_split`), and the
clip id is the stem (``000001``), which is also the video's name.

Archive members are matched by file name wherever they sit in the archive and written to names chosen
here (``videos/{id}.mp4``, ``audio/{id}.wav``), never to the member's own path, and only regular files
are read, so an archive cannot write outside the output folder. Every file is written under a temporary
name and renamed when complete; a rerun skips the files already there.

The raw manifest gives each clip its video (``path``) and its binaural wav (``audio_path``); the extract
stage takes the frames from the first and the audio from the second.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from avsep.core.io import STATUS_FAILED, STATUS_OK, atomic_path
from avsep.core.progress import progress as progress_bar
from avsep.data.prepare.clip_tables import CLIP_TABLE_COLUMNS
from avsep.data.prepare.metadata import FAIRPLAY_SPLITS, parse_fairplay_split
from avsep.data.prepare.metadata_checks import MetadataError, MetadataWarning

#: Columns of the raw manifest written by :func:`import_fairplay`, in order.
MANIFEST_COLUMNS = ("id", "status", "reason", "label", "split", "path", "audio_path", "error", "fold", "audio_name")
REASON_MONO = "mono audio where binaural (2-channel) is expected"


@dataclass(frozen=True)
class ImportConfig:
    """What a clip's wav must be.

    Attributes:
        channels: channels the wav must have at least (2: binaural).
        audio_rate: the sample rate every wav of the dataset must have (None: any rate >= ``min_rate``).
        min_rate: the front-end rate; a wav below it cannot give audio at that rate.
    """

    channels: int = 2
    audio_rate: int | None = None
    min_rate: int = 11025


# --------------------------------------------------------------------------------------------------
# Split files -> clip table
# --------------------------------------------------------------------------------------------------


def fairplay_clip_table(splits_archive: str | Path, fold: int = 1) -> pd.DataFrame:
    """Clips of one FAIR-Play split (``splitN/{train,val,test}.h5`` in the splits tarball).

    Returns:
        columns :data:`avsep.data.prepare.clip_tables.CLIP_TABLE_COLUMNS` + ``fold, audio_name``, all ``ok`` (the
        split files' entries are validated by :func:`parse_fairplay_split`), sorted by id.

    Raises:
        MetadataError: the archive is unreadable or lacks one of the fold's three files, or a split file
            is malformed (the message names the archive and the member).
    """
    archive = Path(splits_archive)
    frames = []
    with tempfile.TemporaryDirectory(prefix="fairplay-splits-") as tmp:
        members = _split_members(archive, fold)
        for split in FAIRPLAY_SPLITS:
            member = members.get(split)
            if member is None:
                raise MetadataError(archive, f"split{fold}", f"no split{fold}/{split}.h5 in the archive")
            local = Path(tmp) / f"split{fold}" / f"{split}.h5"
            _extract_member(archive, member, local)
            try:
                frames.append(parse_fairplay_split(local))
            except MetadataError as e:
                raise MetadataError(f"{archive}:{member}", e.where, e.reason) from None
    df = pd.concat(frames, ignore_index=True)
    dup = df["id"][df["id"].duplicated()].unique().tolist()
    if dup:
        warnings.warn(
            f"{archive}: split{fold}: {len(dup)} clip(s) listed in two splits, first kept (train, val, test): "
            f"{', '.join(dup[:10])}",
            MetadataWarning,
            stacklevel=2,
        )
        df = df.drop_duplicates("id", keep="first")
    df["status"], df["reason"], df["error"] = STATUS_OK, "", ""
    cols = [*CLIP_TABLE_COLUMNS, "fold", "audio_name"]
    return df[cols].sort_values("id", kind="stable").reset_index(drop=True)


def _split_members(archive: Path, fold: int) -> dict[str, str]:
    """``{split: member name}`` of the fold's h5 files (``.../splitN/train.h5`` etc.)."""
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar.getmembers():
                parts = m.name.replace("\\", "/").split("/")
                if m.isfile() and len(parts) >= 2 and parts[-2] == f"split{fold}" and parts[-1].endswith(".h5"):
                    split = parts[-1][: -len(".h5")]
                    if split in FAIRPLAY_SPLITS:
                        found.setdefault(split, m.name)
    except (tarfile.TarError, OSError) as e:
        raise MetadataError(archive, "file", f"not a readable tar archive ({e})") from None
    return found


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        src = tar.extractfile(member)
        if src is None:
            raise MetadataError(archive, member, "not a regular file")
        with src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)


# --------------------------------------------------------------------------------------------------
# Archives -> raw clips
# --------------------------------------------------------------------------------------------------


def unpack_by_name(archive: str | Path, wanted: dict[str, Path], desc: str, progress: bool = True) -> int:
    """Write the archive members whose file name is a key of ``wanted`` to the path it maps to.

    One streaming pass over the archive (a .tar.gz cannot be indexed without reading it); members
    whose destination already exists are skipped, and the pass is skipped when all exist. Returns the
    number of files written.
    """
    todo = {name: dest for name, dest in wanted.items() if not dest.exists()}
    if not todo:
        return 0
    written = 0
    archive = Path(archive)
    try:
        with (
            tarfile.open(archive, "r|*") as tar,
            progress_bar(total=len(todo), desc=desc, unit="file", disable=not progress) as bar,
        ):
            for m in tar:
                name = m.name.replace("\\", "/").rsplit("/", 1)[-1]
                dest = todo.pop(name, None) if m.isfile() else None
                if dest is None:
                    continue
                src = tar.extractfile(m)
                if src is None:  # pragma: no cover - isfile() members always have data
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with src, atomic_path(dest) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
                written += 1
                bar.update(1)
                if not todo:
                    break
    except (tarfile.TarError, EOFError, OSError) as e:
        raise RuntimeError(f"{archive}: not a readable (or a truncated) tar archive: {e}") from None
    return written


def import_fairplay(
    clips: pd.DataFrame,
    videos_archive: str | Path,
    audios_archive: str | Path,
    out_dir: str | Path,
    cfg: ImportConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Unpack the clips of ``clips`` (a FAIR-Play clip table) and return the raw manifest (not written).

    Every clip ends as one row: ``ok`` with ``path = videos/{id}.mp4`` and ``audio_path = audio/{id}.wav``
    (relative to ``out_dir``), or ``failed`` with one of these reasons:

    * ``missing video: {id}.mp4 is not in the video archive``
    * ``missing audio: the split names {name}, which is not in the audio archive``
    * ``unreadable audio: ...`` (not a sound file)
    * ``mono audio where binaural (2-channel) is expected``
    * ``wrong sample rate: R Hz, expected E Hz`` (``cfg.audio_rate``) or ``... below the front-end rate``

    Rows that are not ``ok`` in ``clips`` are carried over as ``failed`` with their reason.
    """
    cfg = cfg or ImportConfig()
    out_dir = Path(out_dir)
    ok = clips[clips["status"] == STATUS_OK]
    videos = {f"{rid}.mp4": out_dir / "videos" / f"{rid}.mp4" for rid in ok["id"]}
    audios = {str(name): out_dir / "audio" / f"{rid}.wav" for rid, name in zip(ok["id"], ok["audio_name"], strict=True)}
    unpack_by_name(videos_archive, videos, "unpack videos", progress)
    unpack_by_name(audios_archive, audios, "unpack audio", progress)
    rows = [_import_row(r, out_dir, cfg) for r in clips.to_dict("records")]
    df = pd.DataFrame(rows)
    return df[list(MANIFEST_COLUMNS)].sort_values("id", kind="stable").reset_index(drop=True)


def _import_row(row: dict[str, Any], out_dir: Path, cfg: ImportConfig) -> dict[str, Any]:
    rid = str(row["id"])
    base = {
        "id": rid, "label": row["label"], "split": row["split"], "path": "", "audio_path": "",
        "error": str(row.get("error") or ""), "fold": row.get("fold"), "audio_name": row.get("audio_name"),
    }  # fmt: skip
    if row["status"] != STATUS_OK:
        return {**base, "status": STATUS_FAILED, "reason": str(row["reason"])}
    video, wav = out_dir / "videos" / f"{rid}.mp4", out_dir / "audio" / f"{rid}.wav"
    if not wav.is_file():  # the file the split names, first
        reason = f"missing audio: the split names {row['audio_name']}, which is not in the audio archive"
    elif not video.is_file():
        reason = f"missing video: {rid}.mp4 is not in the video archive"
    else:
        reason = check_wav(wav, cfg)
    if reason is not None:
        return {**base, "status": STATUS_FAILED, "reason": reason}
    rel = {"path": video.relative_to(out_dir).as_posix(), "audio_path": wav.relative_to(out_dir).as_posix()}
    return {**base, **rel, "status": STATUS_OK, "reason": ""}


def check_wav(path: Path, cfg: ImportConfig) -> str | None:
    """Why the wav at ``path`` cannot be a clip's audio, or None if it can."""
    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        return f"unreadable audio: {e}".replace(str(path), path.name)
    if info.channels < cfg.channels:
        return REASON_MONO if info.channels == 1 else f"{info.channels}-channel audio where {cfg.channels} are expected"
    if cfg.audio_rate is not None and info.samplerate != cfg.audio_rate:
        return f"wrong sample rate: {info.samplerate} Hz, expected {cfg.audio_rate} Hz"
    if info.samplerate < cfg.min_rate:
        return f"wrong sample rate: {info.samplerate} Hz is below the front-end rate {cfg.min_rate} Hz"
    return None

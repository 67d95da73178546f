"""The ``avsep`` command (also ``python -m avsep.cli``); the workflow calls the same stage functions.

* ``avsep info CKPT``: what a checkpoint is: the model family and variant, the dataset it was trained on, the
  weights of its encoders, its training steps and loss, and the scores of its evaluation when the DAG wrote one.
* ``avsep separate VIDEO``: separate the sounding objects of a video with a checkpoint (one wav per object,
  the residual and ``summary.png``; :mod:`avsep.separate`).
* ``avsep train``: train one variant (what ``rule train`` runs; ``torchrun`` starts it once per process for
  distributed training).
* ``avsep lavss-oracles``: SDR of oracle masks from position + IPD on the LAVSS test lists
  (:mod:`avsep.evaluation.oracles`): how much the binaural cues allow a location-guided model at all.

Bad input (a missing or foreign file) is one line on stderr naming the file and the problem, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pair(values: Sequence[str] | None) -> tuple[str, str] | None:
    return (values[0], values[1]) if values else None


def checkpoint_info(path: str | Path, root: str | Path | None = None) -> list[str]:
    """Lines describing the checkpoint at ``path`` (see ``avsep info``); ``root`` is the DAG's working directory
    whose ``results/`` hold its evaluation (default: the directory above ``models/`` in the path)."""
    from avsep.engine import checkpoint

    path = Path(path)
    ck = checkpoint.load_model_checkpoint(path)
    cfg, meta = ck["config"], ck["meta"]
    family = "LAVSS (binaural)" if "backbone" in cfg else "HFRA family (mono mask separator)"
    train = meta.get("train", {})
    lines = [
        f"checkpoint: {path}",
        f"family: {family}",
        f"variant: {meta.get('model', '?')}" + (f" ({meta['label']})" if meta.get("label") else ""),
        f"dataset: {meta.get('dataset', '?')}",
    ]
    if "backbone" in cfg:
        lines.append(f"architecture: backbone {cfg['backbone']}, visual {cfg['visual']}, position {cfg['position']}, "
                     f"ipd {cfg['ipd']} ({'+'.join(cfg.get('ipd_features', []))})")
        lines.append(f"weights: {meta.get('weights', '?')}; transferred from pre-training: "
                     f"{', '.join(meta.get('transferred', [])) or 'nothing'}")
    else:
        v = cfg["visual"]
        lines.append(f"architecture: {cfg['fusion']} fusion, U-Net ngf {cfg['unet']['ngf']} x {cfg['unet']['num_downs']} "
                     f"levels, visual {v['kind']}, loss {cfg.get('sep_loss', 'bce')}")
        lines.append(f"visual weights: {meta.get('visual_weights', '?')}")
        if meta.get("align_lambda", 0):
            lines.append(f"alignment: lambda {meta['align_lambda']}, target {meta.get('clap_weights', '?')}")
    lines.append(f"training: {train.get('steps', '?')} steps of batch {train.get('batch_size', '?')}, lr {train.get('lr', '?')}, "
                 f"seed {train.get('seed', '?')}; final loss {meta.get('final_loss', float('nan')):.4f}")
    lines += _evaluations(path, cfg, meta, root)
    return lines


def _evaluations(path: Path, cfg: dict[str, Any], meta: dict[str, Any], root: str | Path | None) -> list[str]:
    parts = path.resolve().parts
    if root is None and "models" in parts:
        root = Path(*parts[: len(parts) - 1 - parts[::-1].index("models")])
    if root is None:
        return []
    name, dataset = meta.get("model", path.parent.name), meta.get("dataset", "")
    base = Path(root) / "results"
    found = ([base / "lavss_eval" / dataset / kind / f"{name}.json" for kind in ("different", "same_type")]
             if "backbone" in cfg else [base / "eval" / dataset / f"{name}.json"])
    lines = []
    for f in found:
        if f.is_file():
            s = json.loads(f.read_text())
            scores = ", ".join(f"{k.upper()} {s[k]:.2f}" for k in ("sdr", "sir", "sar") if s.get(k) is not None)
            lines.append(f"evaluation ({f.relative_to(root)}): {scores} dB on {s.get('n_scored', '?')} mixtures "
                         f"({s.get('n_skipped', 0)} skipped)")
    return lines or ["evaluation: none found under " + str(base)]


DEFAULT_CHECKPOINT = "models/synth-music/sop/checkpoint.pt"


def _threshold(value: str) -> float | None:
    if value.lower() == "none":
        return None
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'none', not {value!r}") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'none', not {value!r}")
    return v


def _separate(args: argparse.Namespace) -> int:
    from avsep.separate import SeparateError
    from avsep.separate.run import separate_video

    out = Path(args.out) if args.out else Path("separated") / Path(args.video).stem
    try:
        res = separate_video(args.video, args.checkpoint, out, device=args.device, boxes=args.box,
                             query_images=args.query_image, detector=args.detector, force=args.force,
                             max_objects=args.max_objects, threshold=args.mask_threshold)
    except SeparateError as e:
        print(f"avsep separate: {e}", file=sys.stderr)
        return 2
    print(f"wrote {res.out_dir}: " + ", ".join(p.name for p in [*res.stems, res.residual, res.summary])
          + f" ({res.n_samples / res.sample_rate:.1f} s, {res.sample_rate} Hz, {res.channels} channel(s))")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="avsep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    i = sub.add_parser("info", help="describe a trained checkpoint (family, variant, dataset, weights, scores)")
    i.add_argument("checkpoint", help="a checkpoint.pt written by the DAG (models/<dataset>/<model>/checkpoint.pt)")
    i.add_argument("--root", help="the DAG's working directory (default: the one above models/ in the path)")
    s = sub.add_parser("separate", help="separate the sounding objects of a video: one wav per object, residual, summary.png",
                       description="Separate VIDEO with a trained checkpoint into DIR/<n>_<label>.wav per object, "
                                   "DIR/residual.wav (mixture minus the stems) and DIR/summary.png. HFRA-family "
                                   "checkpoints separate mono audio (a stereo file: its downmix), LAVSS ones 2-channel "
                                   "audio (binaural stems). The objects are detected, or given with --box / "
                                   "--query-image.")
    s.add_argument("video", help="the video file (any length; anything ffmpeg reads)")
    s.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"a checkpoint.pt of the DAG (default: {DEFAULT_CHECKPOINT})")
    s.add_argument("--out", help="output directory (default: separated/<video name>)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.add_argument("--box", action="append", default=[], metavar="x1,y1,x2,y2[:label]",
                   help="an object's box in pixels of the frame (or fractions when all <= 1); repeatable")
    s.add_argument("--query-image", action="append", default=[], metavar="IMG",
                   help="an image of an object to separate (HFRA family); repeatable")
    s.add_argument("--detector", help="YOLO weights for finding the objects (default: the detector the DAG trained for "
                                      "the checkpoint's dataset, models/<dataset>/detector/weights.pt)")
    s.add_argument("--max-objects", type=int, default=2, help="objects the detector may find at most (default 2)")
    s.add_argument("--mask-threshold", type=_threshold, default=0.5,
                   help="binarise masks above this value (default 0.5, as the evaluation); 'none' for soft masks")
    s.add_argument("--force", action="store_true", help="write into an output directory that is not empty")
    t = sub.add_parser("train", help="train one model variant on one dataset")
    t.add_argument("--params", default="params.yaml", help="params.yaml to read")
    t.add_argument("--dataset", required=True)
    t.add_argument("--model", required=True)
    t.add_argument("--manifest", required=True, help="extract manifest (data/<dataset>/extract/manifest.parquet)")
    t.add_argument("--mixtures", required=True, help="training-mixture manifest (data/<dataset>/train_mixtures.parquet)")
    t.add_argument("--clip", nargs=2, metavar=("NPY", "INDEX"), help="CLIP cache of the train split")
    t.add_argument("--clap", nargs=2, metavar=("NPY", "INDEX"), help="CLAP cache of the training mixtures")
    t.add_argument("--out", required=True, help="final checkpoint path")
    o = sub.add_parser("lavss-oracles", help="oracle-mask SDR of the LAVSS test lists (after the DAG's lavss_mixtures)")
    o.add_argument("--params", default="params.yaml", help="params.yaml to read")
    o.add_argument("--root", default=".", help="the DAG's working directory")
    args = ap.parse_args(argv)

    if args.command == "info":
        try:
            print("\n".join(checkpoint_info(args.checkpoint, args.root)))
        except (FileNotFoundError, RuntimeError, ValueError, KeyError) as e:
            print(f"avsep info: {e}", file=sys.stderr)
            return 2
        return 0

    if args.command == "separate":
        return _separate(args)

    from avsep.config.params import load_params

    p = load_params(args.params)
    if args.command == "lavss-oracles":
        from avsep.evaluation.oracles import run_oracles

        print(run_oracles(p, root=args.root).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.command == "train":
        from avsep.stages import train

        clip = [_pair(args.clip)] if args.clip else None
        train.train(p, args.dataset, args.model, args.manifest, args.out, args.mixtures, clip, _pair(args.clap),
                    launch=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

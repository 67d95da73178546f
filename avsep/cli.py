"""Command line: ``python -m avsep.cli <command>`` (the workflow calls the same stage functions).

* ``train``: train one variant (what ``rule train`` runs; ``torchrun`` starts it once per process for
  distributed training).
* ``lavss-oracles``: SDR of oracle masks from position + IPD on the LAVSS test lists
  (:mod:`avsep.evaluation.oracles`): how much the binaural cues allow a location-guided model at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _pair(values: Sequence[str] | None) -> tuple[str, str] | None:
    return (values[0], values[1]) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m avsep.cli", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
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

    from avsep.config.params import load_params
    from avsep.stages import train

    p = load_params(args.params)
    if args.command == "lavss-oracles":
        from avsep.evaluation.oracles import run_oracles

        print(run_oracles(p, root=args.root).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.command == "train":
        clip = [_pair(args.clip)] if args.clip else None
        train.train(p, args.dataset, args.model, args.manifest, args.out, args.mixtures, clip, _pair(args.clap),
                           launch=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

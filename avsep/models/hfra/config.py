"""The HFRA-family model configs (plain dataclasses: the typed params hold them without importing the networks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class UNetConfig:
    ngf: int = 64
    out_channels: int = 32
    num_downs: int = 7
    bottleneck_channels: int = 0  # extra channels concatenated at the bottleneck (middle fusion)


FUSIONS = ("late", "middle", "hierarchical")
VISUAL_KINDS = ("frames", "embedding")
SEP_LOSSES = ("bce", "l1_spec")  # Sound-of-Pixels/CLIPSep (and HFRA's code) | HFRA eq. 4
ALIGN_HEADS = ("linear", "none")  # a learned W to the CLAP dimension | z_a itself (HFRA eq. 6)


@dataclass(frozen=True)
class VisualConfig:
    kind: str = "frames"  # frames | embedding
    width: int = 64  # ResNet-18 width for kind=frames
    frame_size: int = 224
    n_frames: int = 3  # frames max-pooled per source
    embedding_dim: int = 512  # for kind=embedding
    weights: str = "random"  # label of the weights the visual encoder started from


@dataclass(frozen=True)
class SeparatorConfig:
    fusion: str = "late"
    k: int = 32  # late-fusion channels
    middle_dim: int = 32  # channels tiled at the bottleneck (middle: 32, hierarchical: 512)
    align_dim: int = 0  # > 0: alignment to an embedding of this (CLAP) dimension
    align_head: str = "linear"  # linear: a Linear W from the bottleneck to align_dim | none: the bottleneck itself
    sep_loss: str = "bce"  # bce: weighted BCE on binary masks | l1_spec: L1 of masked vs true spectrograms (eq. 4)
    unet: UNetConfig = field(default_factory=UNetConfig)
    visual: VisualConfig = field(default_factory=VisualConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "SeparatorConfig":
        d = dict(d)
        d["unet"] = UNetConfig(**d["unet"])
        d["visual"] = VisualConfig(**d["visual"])
        return SeparatorConfig(**d)

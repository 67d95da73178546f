"""The LAVSS model config (a plain dataclass: the typed params hold it without importing the network)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

BACKBONES = ("sop", "sep25d")
VISUALS = ("crop", "frame")
IPD_FEATURES = ("cos", "sin")


@dataclass(frozen=True)
class LAVSSConfig:
    """Architecture of one LAVSS-table variant (paper sizes in comments; demos shrink them by params)."""

    backbone: str = "sep25d"  # sep25d (bottleneck AVP fusion) | sop (late fusion)
    visual: str = "crop"  # crop (detected box, LAVSS) | frame (whole frame, appearance-only baselines)
    position: bool = True  # position guidance (PositionNet + VP attention)
    ipd: bool = True  # IPD channels in the audio input
    ipd_features: tuple[str, ...] = ("cos",)  # cos (paper eq. 4) and/or sin (the side)
    vp_attention: bool = True  # w/o VP atten. when False
    vp_input_norm: bool = True  # LayerNorm F_v and F_p before the VP attention (ours; the paper has none)
    vp_residual: bool = True  # F_vp = F_v + VP(F_v, F_p) (ours; the paper: F_vp = VP(F_v, F_p))
    avp_attention: bool = True  # w/o AVP atten. when False
    multi_scale: bool = True  # w/o multi when False
    tile_concat: bool = False  # Tile-Concat fusion (no attention, no multi-scale)
    bottleneck_fusion: bool = True  # the AVP / Tile-Concat fusion at the bottleneck (sop: False = late fusion only)
    ngf: int = 64  # U-Net width
    num_downs: int = 7  # U-Net depth (7: 256 x 256 -> 2 x 2); input sides must be multiples of 2^num_downs
    k: int = 32  # late-fusion channels (sop backbone)
    visual_width: int = 64  # ResNet-18 width (64: 512 channels)
    visual_weights: str = "random"  # random | ResNet-18 state-dict file | torchvision enum (ImageNet in the paper)
    crop_size: int = 224  # box crops fed to the ResNet-18 (a multiple of 32)
    image_size: int = 224  # frames are loaded at image_size x image_size before cropping
    d_model: int = 512  # channels of F_v, F_p, F_vp and the attention width
    pos_D: int = 16  # gamma(x, y) frequencies (4 D = 64 channels)
    pos_hidden: int = 256  # PositionNet MLP hidden width (64 -> 256 -> 512)
    pos_grid: int = 56  # box samples per side for gamma(x, y) (then max-pooled to p x p)
    n_heads: int = 8
    n_layers: int = 2
    ffn_mult: int = 4

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown LAVSS backbone {self.backbone!r}; expected one of {BACKBONES}")
        if self.visual not in VISUALS:
            raise ValueError(f"unknown LAVSS visual input {self.visual!r}; expected one of {VISUALS}")
        object.__setattr__(self, "ipd_features", tuple(self.ipd_features))
        bad = [f for f in self.ipd_features if f not in IPD_FEATURES]
        if bad or not self.ipd_features:
            raise ValueError(f"ipd_features must be a non-empty subset of {IPD_FEATURES}, got {self.ipd_features}")
        if self.position and self.visual == "frame":
            raise ValueError("position guidance needs the detected box (visual='crop'), not the whole frame")
        if self.num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (the AVP fusion reads the last three 8 ngf levels), got {self.num_downs}")
        if self.crop_size % 32 or self.crop_size < 32:
            raise ValueError(f"crop_size must be a multiple of 32 (ResNet-18 stride), got {self.crop_size}")
        if self.backbone == "sep25d" and not self.bottleneck_fusion:
            raise ValueError("the sep25d backbone fuses the visual feature at the bottleneck: bottleneck_fusion must be true")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")

    @property
    def in_channels(self) -> int:
        """U-Net input channels per ear: the log magnitude, plus the IPD channels."""
        return 1 + (len(self.ipd_features) if self.ipd else 0)

    @property
    def pool(self) -> int:
        """Side of the F_v / F_p / F_vp maps (``crop_size / 32``; 7 at 224)."""
        return self.crop_size // 32

    def mono(self) -> LAVSSConfig:
        """The monaural pre-training architecture of this variant: no IPD, no position."""
        return replace(self, ipd=False, position=False)

    def fusion_signature(self) -> tuple[Any, ...] | None:
        """What must agree for a pre-trained bottleneck fusion module to be copied into this variant."""
        if not self.bottleneck_fusion:
            return None
        return (self.tile_concat, self.multi_scale, self.avp_attention, self.d_model, self.n_heads, self.n_layers,
                self.ffn_mult, self.pool)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ipd_features"] = list(self.ipd_features)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LAVSSConfig:
        return LAVSSConfig(**{**d, "ipd_features": tuple(d.get("ipd_features", ("cos",)))})

"""The spectrogram U-Net of Sound-of-Pixels / CLIPSep / HFRA ("U-Net7" at the papers' depth, ``num_downs`` = 7).

Down path 1 -> ngf -> 2ngf -> 4ngf -> 8ngf -> 8ngf -> 8ngf -> 8ngf (256 px -> 2 px); each down block is
LeakyReLU(0.2) -> Conv 4x4 stride 2 -> BatchNorm, except the outermost (conv only) and the innermost (no
BatchNorm). Up blocks are ReLU -> bilinear x2 -> Conv 3x3 -> BatchNorm (outermost: conv with bias, no
BatchNorm), with skip connections by concatenation. The input log(|X| + 1e-10) first goes through a
BatchNorm. Optional ``bottleneck_channels`` are concatenated to the innermost features before the
innermost up-convolution (middle fusion); :meth:`UNet.forward` also returns the bottleneck features
(before that concatenation) for representation alignment.
"""

from __future__ import annotations

import torch
from torch import nn

from avsep.models.hfra.config import UNetConfig


def _channels(cfg: UNetConfig) -> list[int]:
    """Channel count after each down block: [ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...] (num_downs entries)."""
    chans = [cfg.ngf * min(2**i, 8) for i in range(cfg.num_downs)]
    return chans


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        if cfg.num_downs < 2:
            raise ValueError("UNet needs num_downs >= 2")
        self.cfg = cfg
        chans = _channels(cfg)
        self.bn0 = nn.BatchNorm2d(1)
        downs: list[nn.Module] = []
        in_c = 1
        for i, out_c in enumerate(chans):
            conv = nn.Conv2d(in_c, out_c, kernel_size=4, stride=2, padding=1, bias=False)
            if i == 0:
                downs.append(nn.Sequential(conv))
            elif i == len(chans) - 1:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2), conv, nn.BatchNorm2d(out_c)))
            in_c = out_c
        self.downs = nn.ModuleList(downs)
        # Up blocks, innermost first. Block j maps to the resolution of down level (n-2-j).
        ups: list[nn.Module] = []
        n = len(chans)
        for j in range(n):
            level = n - 1 - j  # the down level whose output this block upsamples
            if j == 0:
                in_up = chans[level] + cfg.bottleneck_channels
            else:
                in_up = chans[level] * 2  # concatenated skip
            if level == 0:
                out_up = cfg.out_channels
                conv = nn.Conv2d(in_up, out_up, kernel_size=3, padding=1, bias=True)
                ups.append(nn.Sequential(nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"), conv))
            else:
                out_up = chans[level - 1]
                conv = nn.Conv2d(in_up, out_up, kernel_size=3, padding=1, bias=False)
                ups.append(
                    nn.Sequential(
                        nn.ReLU(), nn.Upsample(scale_factor=2, mode="bilinear"), conv, nn.BatchNorm2d(out_up)
                    )
                )
        self.ups = nn.ModuleList(ups)

    @property
    def bottleneck_dim(self) -> int:
        return _channels(self.cfg)[-1]

    def encode(self, log_mag: torch.Tensor) -> torch.Tensor:
        """The encoder alone: ``log_mag`` (B, 1, F, T) -> bottleneck (B, C, f, t), before any visual concat."""
        x = self.bn0(log_mag)
        for down in self.downs:
            x = down(x)
        return x

    def forward(
        self, log_mag: torch.Tensor, bottleneck_cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log_mag`` (B, 1, F, T) -> (features (B, out_channels, F, T), bottleneck (B, C, f, t)).

        ``bottleneck_cond`` (B, bottleneck_channels) is tiled over the bottleneck and concatenated.
        """
        x = self.bn0(log_mag)
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        bottleneck = x
        if self.cfg.bottleneck_channels:
            if bottleneck_cond is None:
                raise ValueError("this U-Net was built for middle fusion: pass bottleneck_cond")
            tiled = bottleneck_cond[:, :, None, None].expand(-1, -1, x.shape[-2], x.shape[-1])
            x = torch.cat([x, tiled], dim=1)
        elif bottleneck_cond is not None:
            raise ValueError("bottleneck_cond given but the U-Net has bottleneck_channels=0")
        n = len(self.downs)
        for j, up in enumerate(self.ups):
            if j > 0:
                x = torch.cat([skips[n - 1 - j], x], dim=1)
            x = up(x)
        return x, bottleneck


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

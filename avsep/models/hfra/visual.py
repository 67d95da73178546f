"""Visual encoders.

``ResNet18Dilated`` is a ResNet-18 written here (torchvision is not usable on these CPU machines) with a
``width`` parameter (64 in the papers) and a dilated last stage (output stride 16), as in
Sound-of-Pixels. ``FrameEncoder`` adds the Sound-of-Pixels head: a 3x3 convolution to ``out_dim``
channels, max-pooling over frames and space, and a sigmoid.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.relu = nn.ReLU(inplace=True)
        self.down: nn.Module | None = None
        if stride != 1 or in_c != out_c:
            self.down = nn.Sequential(nn.Conv2d(in_c, out_c, 1, stride=stride, bias=False), nn.BatchNorm2d(out_c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that pools a CPU tensor in channels-last memory format and returns it contiguous again.

    The same values and, in the backward pass, the same gradient routing (both kernels take the first maximum of
    each window in the same order): only faster, torch's NCHW max-pooling kernel on the CPU being about 6x slower
    than its NHWC one (the ResNet stem's pooling was a fifth of the Sound-of-Pixels frame encoder's forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class ResNet18(nn.Module):
    """ResNet-18 trunk with a ``width`` parameter (64 in the papers).

    With ``dilate_last`` the last stage uses dilation 2 instead of stride 2 (output stride 16, as in
    Sound-of-Pixels); without it this is the standard stride-32 ResNet-18 (7 x 7 maps at 224 px).
    """

    def __init__(self, width: int = 64, dilate_last: bool = True) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            MaxPool2d(3, stride=2, padding=1),
        )
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, stride=2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, stride=2), BasicBlock(4 * w, 4 * w))
        stride, dilation = (1, 2) if dilate_last else (2, 1)
        self.layer4 = nn.Sequential(
            BasicBlock(4 * w, 8 * w, stride=stride, dilation=dilation), BasicBlock(8 * w, 8 * w, dilation=dilation)
        )
        self.out_channels = 8 * w
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (B, 3, H, W) float in [0, 1] -> feature map (B, 8w, H/16 or H/32, ...)."""
        x = (images - self.mean) / self.std
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _own_name(key: str) -> str:
    """torchvision's ResNet-18 parameter name -> this module's (this module's own names pass unchanged)."""
    for old, new in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
        if key.startswith(old):
            return new + key[len(old):]
    return key.replace(".downsample.", ".down.")


def load_resnet18_weights(trunk: ResNet18, spec: str, where: str = "visual_weights") -> None:
    """Start ``trunk`` from pre-trained ResNet-18 weights (in place); ``spec="random"`` leaves it as built.

    ``spec``: a state-dict file (``.pt``/``.pth``: torchvision's ``resnet18`` keys, e.g. its ImageNet file,
    or this module's own), or a torchvision weights enum such as ``ResNet18_Weights.IMAGENET1K_V1``
    (downloaded by torchvision on first use). Every trunk parameter and BatchNorm statistic must be
    present with the trunk's shape (width 64 for ImageNet weights); otherwise a :class:`ValueError` names
    the file and what does not fit, instead of a half-loaded network.
    """
    if spec == "random":
        return
    path = Path(spec)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    elif spec.startswith("ResNet18_Weights."):
        import torchvision

        weights = torchvision.models.ResNet18_Weights[spec.split(".", 1)[1]]
        state = torchvision.models.resnet18(weights=weights).state_dict()
    else:
        raise FileNotFoundError(f"{where}: {spec} is neither a weights file nor a torchvision ResNet18_Weights name")
    if not isinstance(state, dict):
        raise ValueError(f"{where}: {spec} does not hold a state dict")
    renamed = {_own_name(k): v for k, v in state.items() if not k.startswith("fc.")}  # fc: ImageNet's classifier
    own = trunk.state_dict()
    missing = sorted(set(own) - set(renamed))
    unexpected = sorted(set(renamed) - set(own))
    wrong = sorted(k for k in set(own) & set(renamed) if own[k].shape != renamed[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{n} {what}: {', '.join(keys[:3])}" for n, what, keys in (
            (len(missing), "missing", missing), (len(unexpected), "unexpected", unexpected),
            (len(wrong), "of another shape (a ResNet-18 of another width?)", wrong)) if keys]
        raise ValueError(f"{where}: {spec} is not a ResNet-18 state dict for this trunk (width "
                         f"{trunk.out_channels // 8}): " + "; ".join(parts))
    trunk.load_state_dict(renamed)


def ResNet18Dilated(width: int = 64) -> ResNet18:  # noqa: N802 - a named configuration of ResNet18
    """The Sound-of-Pixels trunk: ResNet-18 with a dilated last stage (output stride 16)."""
    return ResNet18(width, dilate_last=True)


class FrameEncoder(nn.Module):
    """Sound-of-Pixels image branch: ResNet-18 -> conv 3x3 to ``out_dim`` -> max over frames and space."""

    def __init__(self, width: int = 64, out_dim: int = 32, activation: str = "sigmoid") -> None:
        super().__init__()
        self.trunk = ResNet18Dilated(width)
        self.head = nn.Conv2d(self.trunk.out_channels, out_dim, 3, padding=1)
        self.activation = activation

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` (B, K, 3, H, W) in [0, 1] -> (B, out_dim)."""
        b, k = frames.shape[:2]
        x = self.head(self.trunk(frames.flatten(0, 1)))
        x = x.view(b, k, x.shape[1], -1).amax(dim=(1, 3))
        return torch.sigmoid(x) if self.activation == "sigmoid" else x

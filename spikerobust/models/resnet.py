"""ResNet32 for CIFAR-10 (He et al. 2016, the CIFAR variant used for the PCM experiments, docs/pcm.md).

A 3×3 conv with 16 channels, three stages of five basic blocks with widths 16, 32, 64 (the first
block of stages 2 and 3 halves the spatial size with stride 2), global average pooling and a
linear classifier: 1 + 2·15 + 1 = 32 weighted layers, about 0.46 M parameters. Shortcuts are
"option A": identity, or, where the shape changes, spatial subsampling by 2 and zero padding of
the new channels (no parameters). Convolutions have no bias; every conv is followed by BatchNorm.

Examples:
    >>> import torch
    >>> model = resnet32()
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in model.parameters())
    464154

References:
    He, Zhang, Ren, Sun. "Deep residual learning for image recognition", CVPR 2016 (§4.2).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..protocol import BATCH_FIRST
from .registry import register_model

__all__ = ["ResNetCIFAR", "BasicBlock", "ShortcutA", "resnet32"]


class ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample by ``stride`` and zero-pad ``extra`` channels on each side.

    Shape:
        ``[B, C, H, W]`` → ``[B, C + 2·extra, ceil(H/stride), ceil(W/stride)]``.
    """

    def __init__(self, stride: int, extra: int) -> None:
        super().__init__()
        self.stride, self.extra = int(stride), int(extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra={self.extra}"


class BasicBlock(nn.Module):
    """conv3×3–BN–ReLU–conv3×3–BN, plus the shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride != 1 or c_in != c_out:
            if (c_out - c_in) % 2:
                raise ValueError(f"BasicBlock: option-A padding needs an even channel increase, got {c_in}→{c_out}")
            self.shortcut: nn.Module = ShortcutA(stride, (c_out - c_in) // 2)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """CIFAR-style ResNet with basic blocks and option-A shortcuts.

    Args:
        blocks: number of blocks per stage (``[5, 5, 5]`` for ResNet32).
        widths: channels per stage (``[16, 32, 64]``).
        n_classes: outputs (10).
        in_channels: image channels (3).

    Shape:
        ``[B, in_channels, H, W]`` (batch first) → logits ``[B, n_classes]``.
    """

    #: The model protocol (:mod:`spikerobust.protocol`): images batch first, no auxiliary loss.
    input_layout = BATCH_FIRST
    supports_aux_loss = False

    def spiking_layers(self) -> list:
        """None: a ReLU network."""
        return []

    def __init__(
        self,
        blocks: Sequence[int] = (5, 5, 5),
        widths: Sequence[int] = (16, 32, 64),
        n_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(blocks) != len(widths) or len(blocks) == 0 or min(blocks) < 1:
            raise ValueError(f"ResNetCIFAR: blocks and widths must be equally long and >= 1, got {blocks}, {widths}")
        self.conv1 = nn.Conv2d(int(in_channels), widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        c_in = widths[0]
        for i, (n, c) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(int(n)):
                layers.append(BasicBlock(c_in, c, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, int(n_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal convolutions and linear weights, BatchNorm at (1, 0), zero linear bias."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.stages(out)
        out = out.mean(dim=(2, 3))
        return self.fc(out)


@register_model("resnet32")
def resnet32(n_classes: int = 10, in_channels: int = 3) -> ResNetCIFAR:
    """ResNet32: ``[5, 5, 5]`` basic blocks, widths 16/32/64, option-A shortcuts, BatchNorm."""
    return ResNetCIFAR((5, 5, 5), (16, 32, 64), n_classes=n_classes, in_channels=in_channels)

"""A small 2D UNet: the dislocation ("contour") detector of DESIGN 3.4.

Its decoder features at quarter resolution also feed the stereo matcher
(DESIGN 3.5, Siamese use): :meth:`DislocationUNet.forward_with_features`
returns the logits and those features from one pass.

Input images are normalised *outside* the network (see
:func:`napari_stereo_tem.stereo.detection.normalise_image`); ``forward`` expects
float tensors of shape ``(B, in_channels, H, W)`` with ``H`` and ``W``
divisible by ``2 ** (depth - 1)`` (the inference code pads otherwise).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DislocationUNet", "ConvBlock"]


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, *, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DislocationUNet(nn.Module):
    """UNet giving per-pixel dislocation logits and quarter-resolution features.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (1 for grey levels).
    base_channels : int
        Width of the first level; level ``k`` has ``base_channels * 2**k``.
    depth : int
        Number of resolution levels (``depth - 1`` poolings); at least 3 so
        that the decoder has a quarter-resolution level.
    n_classes : int
        Output channels (1: dislocation; 2: dislocation and distractor).

    Notes
    -----
    BatchNorm (not GroupNorm) is used on purpose: in eval mode it is a purely
    local operation, so tiled inference equals whole-image inference away
    from tile borders.
    """

    def __init__(self, *, in_channels: int = 1, base_channels: int = 16, depth: int = 4, n_classes: int = 1):
        super().__init__()
        if depth < 3:
            raise ValueError(f"depth must be at least 3 (quarter-resolution features), got {depth}")
        self.in_channels = int(in_channels)
        self.base_channels = int(base_channels)
        self.depth = int(depth)
        self.n_classes = int(n_classes)
        widths = [self.base_channels * 2**k for k in range(self.depth)]
        self.encoders = nn.ModuleList()
        previous = self.in_channels
        for width in widths:
            self.encoders.append(ConvBlock(in_channels=previous, out_channels=width))
            previous = width
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(self.depth - 2, -1, -1):
            self.ups.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.decoders.append(ConvBlock(in_channels=2 * widths[level], out_channels=widths[level]))
        self.head = nn.Conv2d(widths[0], self.n_classes, 1)
        #: Channels of :meth:`features` (the decoder output at quarter resolution).
        self.feature_channels = widths[2]

    @property
    def size_multiple(self) -> int:
        """``H`` and ``W`` must be multiples of this."""
        return 2 ** (self.depth - 1)

    def architecture(self) -> dict:
        """The constructor's keyword arguments (stored beside saved weights)."""
        return {"in_channels": self.in_channels, "base_channels": self.base_channels,
                "depth": self.depth, "n_classes": self.n_classes}

    def fused(self) -> "DislocationUNet":
        """An eval-mode copy with every BatchNorm folded into the convolution before it.

        Same outputs (to float rounding), about twice as fast on CPU; for
        inference only (the copy has no BatchNorm left to train). Its weights
        are laid out channels-last, which oneDNN runs about 1.5x faster again
        on CPU (the outputs follow that layout; the values are the same).
        """
        model = copy.deepcopy(self).eval()
        for block in model.modules():
            if not isinstance(block, nn.Sequential):
                continue
            for i in range(len(block) - 1):
                conv, norm = block[i], block[i + 1]
                if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
                    continue
                with torch.no_grad():  # folded into the copy's own convolution: no new layer to initialise
                    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
                    conv.weight.mul_(scale[:, None, None, None])
                    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
                block[i + 1] = nn.Identity()
        return model.to(memory_format=torch.channels_last)

    def _run(self, x: torch.Tensor, *, stop_at_features: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        multiple = self.size_multiple
        if x.ndim != 4 or x.shape[-1] % multiple or x.shape[-2] % multiple:
            raise ValueError(
                f"input must be (B, C, H, W) with H and W multiples of {multiple}, got {tuple(x.shape)}; pad the image"
            )
        skips = []
        for k, encoder in enumerate(self.encoders):
            if k:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        features = None
        # decoders run from level depth-2 down to level 0; level 2 is quarter resolution
        for level, up, decoder in zip(range(self.depth - 2, -1, -1), self.ups, self.decoders):
            x = decoder(torch.cat([up(x), skips[level]], dim=1))
            if level == 2:
                features = x
                if stop_at_features:
                    return None, features
        return self.head(x), features

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, n_classes, H, W)`` and features ``(B, feature_channels, H//4, W//4)`` in one pass."""
        return self._run(x, stop_at_features=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits, shape ``(B, n_classes, H, W)``."""
        return self._run(x, stop_at_features=False)[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder features at quarter resolution, ``(B, feature_channels, H // 4, W // 4)``.

        Stops the decoder at that level (cheaper than :meth:`forward_with_features`).
        """
        return self._run(x, stop_at_features=True)[1]

"""The stereo matcher of DESIGN 3.5: feature volume, stacked hourglass 3D CNN, soft-argmin.

The left and right feature maps come from the same network (Siamese use of
the detector UNet, at quarter resolution). For every candidate disparity
``d`` (signed, in feature-map pixels) the feature volume holds the
concatenation ``[f_L(u, v), f_R(u + d, v)]``; a small stack of hourglass
modules of 3x3x3 convolutions turns it into a cost volume ``V_c``; the
disparity is the soft-argmin ``sum_d d softmax(-V_c)(d)`` and its spread
(standard deviation) is kept as a per-pixel confidence. Disparities are
returned in full-resolution pixels, upsampled by ``scale``.

Conventions: ``d = x_right - x_left``; tensors are ``(B, C, H, W)``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["StereoMatcher", "StereoNet", "feature_volume", "soft_argmin", "disparity_levels"]


def disparity_levels(disparity_range: tuple[int, int], scale: int) -> list[int]:
    """Signed candidate disparities in feature-map pixels covering ``disparity_range`` (full resolution).

    ``(-24, 24)`` at ``scale=4`` gives ``[-6, ..., 6]``; the range is widened
    outwards when it is not a multiple of ``scale``.
    """
    low, high = int(disparity_range[0]), int(disparity_range[1])
    if high < low:
        raise ValueError(f"disparity_range must be (min, max) with min <= max, got {disparity_range}")
    return list(range(math.floor(low / scale), math.ceil(high / scale) + 1))


def feature_volume(f_left: torch.Tensor, f_right: torch.Tensor, levels) -> torch.Tensor:
    """Concatenation volume ``V_f(:, v, u, d) = [f_L(u, v), f_R(u + d, v)]``.

    Parameters
    ----------
    f_left, f_right : Tensor, shape (B, C, H, W)
    levels : sequence of int
        Consecutive signed disparities in feature-map pixels (increasing by 1).

    Returns
    -------
    Tensor, shape (B, 2C, H, W, D)
        Disparity last (the layout the 3D CNN runs on, see :class:`StereoMatcher`).
        Where ``u + d`` falls outside the right map the right half holds zeros.
    """
    levels = list(levels)
    low, high, n = levels[0], levels[-1], len(levels)
    if levels != list(range(low, high + 1)):
        raise ValueError(f"levels must be consecutive integers, got {levels}")
    w = f_left.shape[-1]
    pad_left, pad_right = max(-low, 0), max(high, 0)
    padded = F.pad(f_right, (pad_left, pad_right))
    offset = low + pad_left
    windows = padded.unfold(-1, n, 1)[..., offset: offset + w, :]  # [..., u, i] = f_R(u + levels[i])
    return torch.cat([f_left[..., None].expand(-1, -1, -1, -1, n), windows], dim=1)


def soft_argmin(cost: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-argmin disparity and its standard deviation.

    Parameters
    ----------
    cost : Tensor, shape (B, D, H, W)
        Matching cost, low where a disparity fits.
    levels : Tensor, shape (D,)
        The disparity of each slice.

    Returns
    -------
    disparity, std : Tensor, shape (B, H, W)
        ``sum_d d p_d`` and ``sqrt(sum_d d^2 p_d - disparity^2)`` with ``p = softmax(-cost)``.
    """
    prob = torch.softmax(-cost, dim=1)
    lv = levels.to(cost).view(1, -1, 1, 1)
    mean = (prob * lv).sum(dim=1)
    second = (prob * lv * lv).sum(dim=1)
    std = torch.sqrt(torch.clamp(second - mean * mean, min=0.0) + 1e-12)
    return mean, std


def _conv3d(cin: int, cout: int, *, pool: bool = False) -> nn.Sequential:
    # Halving by pooling then a stride-1 convolution: strided 3D convolutions
    # fall back to a slow path on CPU (measured 3x slower here).
    groups = 4 if cout % 4 == 0 else 1
    layers = [nn.AvgPool3d(2, ceil_mode=True)] if pool else []
    layers += [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _upsample3d(x: torch.Tensor, size) -> torch.Tensor:
    """Trilinear resize of ``(B, C, h, w, d)`` to ``size`` (``align_corners=False``), one axis after another.

    The same values as ``F.interpolate(x, size, mode="trilinear")`` (to float
    rounding), 3-4x faster on CPU, where PyTorch's trilinear kernel is slow.
    """
    b, c, h, w, d = x.shape
    rows, cols, depth = (int(v) for v in size)
    x = F.interpolate(x.reshape(b * c * h, w, d), size=depth, mode="linear", align_corners=False)
    x = x.reshape(b, c, h, w, depth).permute(0, 1, 4, 2, 3).reshape(b, c * depth, h, w)
    x = F.interpolate(x, size=(rows, cols), mode="bilinear", align_corners=False)
    return x.reshape(b, c, depth, rows, cols).permute(0, 1, 3, 4, 2)


class _Hourglass(nn.Module):
    """Encoder-decoder of 3x3x3 convolutions (two halvings) with skip connections."""

    def __init__(self, width: int):
        super().__init__()
        self.down1 = nn.Sequential(_conv3d(width, 2 * width, pool=True), _conv3d(2 * width, 2 * width))
        self.down2 = nn.Sequential(_conv3d(2 * width, 2 * width, pool=True), _conv3d(2 * width, 2 * width))
        self.up2 = _conv3d(2 * width, 2 * width)
        self.up1 = _conv3d(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(a)
        b = _upsample3d(b, a.shape[2:])
        a = self.up2(b) + a
        a = _upsample3d(a, x.shape[2:])
        return self.up1(a) + x


class StereoMatcher(nn.Module):
    """Cost-volume stereo matcher on quarter-resolution Siamese features.

    Parameters
    ----------
    feature_channels : int
        Channels of each input feature map.
    disparity_range : (int, int)
        Signed range of disparities ``x_right - x_left`` in full-resolution pixels.
    width : int
        Channels of the 3D CNN.
    n_hourglass : int
        Number of stacked hourglass modules.
    scale : int
        Full-resolution pixels per feature-map pixel.
    """

    def __init__(self, *, feature_channels: int, disparity_range: tuple[int, int] = (-24, 24),
                 width: int = 16, n_hourglass: int = 2, scale: int = 4):
        super().__init__()
        self.feature_channels = int(feature_channels)
        self.disparity_range = (int(disparity_range[0]), int(disparity_range[1]))
        self.width = int(width)
        self.n_hourglass = int(n_hourglass)
        self.scale = int(scale)
        self.levels = disparity_levels(self.disparity_range, self.scale)
        self.reduce = nn.Sequential(nn.Conv2d(self.feature_channels, self.width, 3, padding=1),
                                    nn.ReLU(inplace=True), nn.Conv2d(self.width, self.width, 1))
        self.stem = nn.Sequential(_conv3d(2 * self.width, self.width), _conv3d(self.width, self.width))
        self.hourglasses = nn.ModuleList(_Hourglass(self.width) for _ in range(self.n_hourglass))
        self.head = nn.Sequential(_conv3d(self.width, self.width), nn.Conv3d(self.width, 1, 3, padding=1))

    def architecture(self) -> dict:
        """The constructor's keyword arguments."""
        return {"feature_channels": self.feature_channels, "disparity_range": list(self.disparity_range),
                "width": self.width, "n_hourglass": self.n_hourglass, "scale": self.scale}

    def level_tensor(self, device=None, levels=None) -> torch.Tensor:
        """Candidate disparities in full-resolution pixels, shape ``(D,)``."""
        levels = self.levels if levels is None else levels
        return torch.tensor(levels, dtype=torch.float32, device=device) * self.scale

    def forward(self, f_left: torch.Tensor, f_right: torch.Tensor, disparity_range=None) -> dict:
        """Match two feature maps ``(B, C, h, w)``.

        ``disparity_range`` (full-resolution pixels, optional) replaces the range the
        matcher was built with for this call only; the weights do not depend on it.

        Returns
        -------
        dict
            ``disparity`` and ``std``: ``(B, 1, h*scale, w*scale)`` in full-resolution
            pixels; ``cost``: ``(B, D, h, w)``; ``levels``: ``(D,)`` full-resolution
            disparities of the cost slices.
        """
        levels = self.levels if disparity_range is None else disparity_levels(tuple(disparity_range), self.scale)
        gl, gr = self.reduce(f_left), self.reduce(f_right)
        # The 3D CNN runs on (B, C, h, w, D): the same convolutions (the kernel is
        # 3x3x3), but PyTorch picks its fast oneDNN path for batch-1 inputs only
        # when the leading dimensions are large, which D (about 13) is not; the
        # halvings pool then convolve because strided 3D convolutions are slow on CPU.
        x = self.stem(feature_volume(gl, gr, levels))
        for hourglass in self.hourglasses:
            x = hourglass(x)
        cost = self.head(x)[:, 0].permute(0, 3, 1, 2)
        levels = self.level_tensor(cost.device, levels)
        mean, std = soft_argmin(cost, levels)
        size = (f_left.shape[-2] * self.scale, f_left.shape[-1] * self.scale)
        disparity = F.interpolate(mean[:, None], size=size, mode="bilinear", align_corners=False)
        std = F.interpolate(std[:, None], size=size, mode="bilinear", align_corners=False)
        return {"disparity": disparity, "std": std, "cost": cost, "levels": levels}


class StereoNet(nn.Module):
    """A feature network (the UNet) and a :class:`StereoMatcher`, trainable end to end.

    Parameters
    ----------
    unet : dict
        Keyword arguments of :class:`~napari_stereo_tem.nets.unet.DislocationUNet`.
    matcher : dict
        Keyword arguments of :class:`StereoMatcher` except ``feature_channels``
        (taken from the UNet).
    freeze_features : bool
        Keep the UNet's weights fixed (and in eval mode) while training.
    """

    def __init__(self, *, unet: dict | None = None, matcher: dict | None = None, freeze_features: bool = False):
        super().__init__()
        from .unet import DislocationUNet

        self.unet_kwargs = dict(unet or {})
        self.matcher_kwargs = {k: v for k, v in dict(matcher or {}).items() if k != "feature_channels"}
        self.features = DislocationUNet(**self.unet_kwargs)
        self.matcher = StereoMatcher(feature_channels=self.features.feature_channels, **self.matcher_kwargs)
        self.freeze_features = bool(freeze_features)
        if self.freeze_features:
            self.features.requires_grad_(False)

    def architecture(self) -> dict:
        """The constructor's keyword arguments."""
        return {"unet": self.features.architecture(),
                "matcher": {k: v for k, v in self.matcher.architecture().items() if k != "feature_channels"},
                "freeze_features": self.freeze_features}

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this."""
        return max(self.features.size_multiple, self.matcher.scale)

    def fused(self) -> "StereoNet":
        """An eval-mode copy whose feature network is :meth:`DislocationUNet.fused` (inference only)."""
        model = copy.deepcopy(self).eval()
        model.features = model.features.fused()
        return model

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_features:
            self.features.eval()
        return self

    def forward(self, left: torch.Tensor, right: torch.Tensor, *, with_logits: bool = True,
                disparity_range=None) -> dict:
        """Run both views ``(B, 1, H, W)`` (normalised) through the UNet and the matcher.

        ``disparity_range`` is passed to :class:`StereoMatcher` (this call only).

        Returns the matcher's dict plus, when ``with_logits``, ``logits_left`` and
        ``logits_right`` ``(B, n_classes, H, W)`` (inference skips the UNet's last
        decoder levels without them).
        """
        both = torch.cat([left, right], dim=0)
        n = left.shape[0]
        if not with_logits:
            feats = self.features.features(both)
            return self.matcher(feats[:n], feats[n:], disparity_range)
        logits, feats = self.features.forward_with_features(both)
        out = self.matcher(feats[:n], feats[n:], disparity_range)
        out["logits_left"], out["logits_right"] = logits[:n], logits[n:]
        return out

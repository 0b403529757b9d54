"""Training losses of the stereo matcher (DESIGN 3.5, seed 000 section 2.1.2).

``L = g_disp * SmoothL1(d_hat - d_gt) + g_var * sum_d (d - d_gt)^2 softmax(-V_c)(d)
+ g_warp * BCE(warp(h_R, d_hat), h_L_gt)``, each averaged over the dislocation
pixels with ground truth. Every term can be switched off (weight 0) for the
ablation of the paper's Table 2. Plain functions of tensors.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "disparity_loss",
    "variance_loss",
    "warp_loss",
    "warp_horizontal",
    "downsample_disparity",
    "matcher_loss",
]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def disparity_loss(disparity: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 of ``disparity - truth`` averaged over ``mask``; all ``(B, 1, H, W)``.

    ``truth`` may hold NaN outside ``mask``.
    """
    truth = torch.nan_to_num(truth)
    return _masked_mean(F.smooth_l1_loss(disparity, truth, reduction="none"), mask)


def variance_loss(cost: torch.Tensor, levels: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_d (d - d_gt)^2 softmax(-cost)(d)`` averaged over ``mask``.

    Parameters
    ----------
    cost : Tensor, shape (B, D, h, w)
    levels : Tensor, shape (D,)
        Disparity of each slice, in the units of ``truth``.
    truth, mask : Tensor, shape (B, 1, h, w)
        Ground truth at the cost volume's resolution (see :func:`downsample_disparity`).
    """
    prob = torch.softmax(-cost, dim=1)
    lv = levels.to(cost).view(1, -1, 1, 1)
    sq = (lv - torch.nan_to_num(truth)) ** 2
    return _masked_mean((prob * sq).sum(dim=1, keepdim=True), mask)


def warp_horizontal(image: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (right view) at ``(x + disparity, y)``: its values moved to the left view's frame.

    ``image`` is ``(B, C, H, W)``, ``disparity`` ``(B, 1, H, W)``; outside samples are 0.
    """
    b, _, h, w = image.shape
    xs = torch.arange(w, device=image.device, dtype=image.dtype).view(1, 1, w).expand(b, h, w)
    ys = torch.arange(h, device=image.device, dtype=image.dtype).view(1, h, 1).expand(b, h, w)
    gx = 2.0 * (xs + disparity[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * ys / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warp_loss(prob_right: torch.Tensor, disparity: torch.Tensor, label_left: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """``BCE(warp(h_R, d_hat), h_L)`` averaged over ``mask``.

    ``prob_right`` is the right detection probability ``(B, 1, H, W)`` in [0, 1],
    ``label_left`` the left ground-truth map (0/1).
    """
    warped = warp_horizontal(prob_right, disparity).clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(warped, label_left.to(warped.dtype), reduction="none")
    return _masked_mean(bce, mask)


def downsample_disparity(truth: torch.Tensor, mask: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ground-truth disparity over the masked pixels of each ``scale x scale`` cell.

    Returns the low-resolution truth and mask ``(B, 1, H/scale, W/scale)``.
    """
    m = mask.to(truth.dtype)
    total = F.avg_pool2d(torch.nan_to_num(truth) * m, scale)
    count = F.avg_pool2d(m, scale)
    low_mask = count > 0
    return total / count.clamp(min=1e-6), low_mask


def matcher_loss(out: dict, truth: torch.Tensor, mask: torch.Tensor, *, prob_right: torch.Tensor | None = None,
                 g_disp: float = 1.0, g_var: float = 0.1, g_warp: float = 1.0, scale: int = 4) -> tuple[torch.Tensor, dict]:
    """The weighted sum of the three terms for a matcher output ``out``.

    Parameters
    ----------
    out : dict
        From :class:`~napari_stereo_tem.nets.matcher.StereoMatcher` (``disparity``, ``cost``, ``levels``).
    truth : Tensor, shape (B, 1, H, W)
        Ground-truth disparity (NaN where unknown).
    mask : Tensor, shape (B, 1, H, W)
        Dislocation pixels with ground truth.
    prob_right : Tensor, optional
        Right detection probability, needed when ``g_warp > 0``.
    g_disp, g_var, g_warp : float
        Weights; 0 switches a term off.

    Returns
    -------
    loss : Tensor (scalar)
    parts : dict of float
    """
    mask = mask.bool() & torch.isfinite(truth)
    zero = out["disparity"].sum() * 0.0
    parts = {}
    loss = zero
    if g_disp:
        term = disparity_loss(out["disparity"], truth, mask)
        parts["disp"] = float(term.detach())
        loss = loss + g_disp * term
    if g_var:
        low_truth, low_mask = downsample_disparity(truth, mask, scale)
        term = variance_loss(out["cost"], out["levels"], low_truth, low_mask)
        parts["var"] = float(term.detach())
        loss = loss + g_var * term
    if g_warp:
        if prob_right is None:
            raise ValueError("the warp loss needs prob_right (the right detection probability)")
        term = warp_loss(prob_right, out["disparity"], mask.to(prob_right.dtype), mask)
        parts["warp"] = float(term.detach())
        loss = loss + g_warp * term
    return loss, parts

"""Unit tests of the stereo matcher network and its losses (hand-made volumes, known shifts)."""

import numpy as np
import pytest
import torch

from napari_stereo_tem.nets.losses import (
    disparity_loss, downsample_disparity, matcher_loss, variance_loss, warp_horizontal, warp_loss,
)
from napari_stereo_tem.nets.matcher import StereoMatcher, StereoNet, disparity_levels, feature_volume, soft_argmin


def test_soft_argmin_on_hand_made_cost():
    levels = torch.arange(-3, 4, dtype=torch.float32)
    cost = torch.full((1, 7, 2, 2), 50.0)
    cost[0, 5, 0, 0] = 0.0  # d = +2
    cost[0, 1, 0, 1] = 0.0  # d = -2
    cost[0, 3, 1, :] = 0.0  # d = 0
    cost[0, 4, 1, 1] = 0.0  # tie between 0 and +1 -> 0.5
    d, std = soft_argmin(cost, levels)
    np.testing.assert_allclose(d[0].numpy(), [[2.0, -2.0], [0.0, 0.5]], atol=1e-5)
    assert std[0, 0, 0] < 1e-3 and abs(float(std[0, 1, 1]) - 0.5) < 1e-4


def test_feature_volume_zero_outside_and_offset_ranges():
    fl = torch.ones(1, 1, 2, 6)
    fr = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 6).expand(1, 1, 2, 6)
    for levels in ([-2, -1, 0], [1, 2, 3], [-1, 0, 1, 2]):
        vol = feature_volume(fl, fr, levels)
        for i, d in enumerate(levels):
            for u in range(6):
                expected = u + d if 0 <= u + d < 6 else 0
                assert vol[0, 1, 0, u, i] == expected


def test_disparity_levels_are_signed():
    assert disparity_levels((-24, 24), 4) == list(range(-6, 7))
    assert disparity_levels((-10, 3), 4) == [-3, -2, -1, 0, 1]


@pytest.mark.parametrize("k", [-3, 0, 2])
def test_feature_volume_signed_shift(k):
    rng = np.random.default_rng(0)
    fl = torch.tensor(rng.normal(size=(1, 3, 5, 16)), dtype=torch.float32)
    fr = torch.roll(fl, shifts=k, dims=-1)  # right = left moved by +k: f_R(u + k) = f_L(u)
    levels = list(range(-4, 5))
    vol = feature_volume(fl, fr, levels)
    assert vol.shape == (1, 6, 5, 16, 9)
    valid = slice(4, 12)  # away from borders
    diffs = [(vol[0, :3, :, valid, i] - vol[0, 3:, :, valid, i]).abs().max().item() for i in range(9)]
    assert int(np.argmin(diffs)) == levels.index(k) and min(diffs) == 0.0


def test_matcher_shapes_and_units():
    torch.manual_seed(0)
    m = StereoMatcher(feature_channels=8, disparity_range=(-8, 8), width=8, n_hourglass=1, scale=4).eval()
    f = torch.randn(2, 8, 6, 10)
    with torch.no_grad():
        out = m(f, f)
    assert out["disparity"].shape == (2, 1, 24, 40) and out["std"].shape == (2, 1, 24, 40)
    assert out["cost"].shape == (2, 5, 6, 10)
    assert out["disparity"].abs().max() <= 8.0 + 1e-4
    assert m.architecture()["disparity_range"] == [-8, 8]


def test_stereonet_runs_end_to_end_and_freezes():
    net = StereoNet(unet={"base_channels": 4, "depth": 4}, matcher={"width": 4, "n_hourglass": 1,
                                                                    "disparity_range": (-8, 8)},
                    freeze_features=True)
    x = torch.rand(1, 1, 32, 32)
    out = net(x, x)
    assert out["disparity"].shape == (1, 1, 32, 32) and out["logits_left"].shape == (1, 1, 32, 32)
    assert not any(p.requires_grad for p in net.features.parameters())
    net.train()
    assert not net.features.training and net.matcher.training


def test_losses_zero_at_truth_positive_away():
    truth = torch.full((1, 1, 8, 8), float("nan"))
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, 4, 2:6] = True
    truth[mask] = 2.0
    assert disparity_loss(torch.full((1, 1, 8, 8), 2.0), truth, mask) == 0
    assert disparity_loss(torch.full((1, 1, 8, 8), 3.5), truth, mask) > 0
    levels = torch.tensor([0.0, 1.0, 2.0, 3.0])
    sharp = torch.full((1, 4, 8, 8), 100.0)
    sharp[:, 2] = 0.0
    assert variance_loss(sharp, levels, truth, mask) < 1e-6
    wrong = torch.full((1, 4, 8, 8), 100.0)
    wrong[:, 0] = 0.0
    assert variance_loss(wrong, levels, truth, mask) > 3.9
    # warp: the right map is the left label moved by +2 columns
    left = mask.float()
    right = torch.roll(left, 2, dims=-1)
    assert warp_loss(right, torch.full((1, 1, 8, 8), 2.0), left, mask) < 1e-4
    assert warp_loss(right, torch.zeros(1, 1, 8, 8), left, mask) > 1.0
    np.testing.assert_allclose(warp_horizontal(right, torch.full((1, 1, 8, 8), 2.0))[mask].numpy(), 1.0)


def test_matcher_loss_switches_terms():
    truth = torch.full((1, 1, 8, 8), 1.0)
    mask = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    low, low_mask = downsample_disparity(truth, mask, 4)
    assert low.shape == (1, 1, 2, 2) and bool(low_mask.all())
    out = {"disparity": torch.zeros(1, 1, 8, 8, requires_grad=True), "cost": torch.zeros(1, 3, 2, 2),
           "levels": torch.tensor([-4.0, 0.0, 4.0])}
    loss, parts = matcher_loss(out, truth, mask, g_var=0.0, g_warp=0.0)
    assert set(parts) == {"disp"} and loss > 0
    loss, parts = matcher_loss(out, truth, mask, prob_right=torch.ones(1, 1, 8, 8) * 0.5, g_disp=0.0)
    assert set(parts) == {"var", "warp"}
    loss.backward()


def test_stereonet_inference_without_logits_matches():
    torch.manual_seed(1)
    net = StereoNet(unet={"base_channels": 4}, matcher={"width": 4, "n_hourglass": 1}).eval()
    x, y = torch.rand(1, 1, 32, 48), torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        a, b = net(x, y), net(x, y, with_logits=False)
    assert "logits_left" not in b
    torch.testing.assert_close(a["disparity"], b["disparity"])


def test_disparity_range_per_call_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    net = StereoNet(unet={"base_channels": 4, "depth": 4},
                    matcher={"disparity_range": (-8, 8), "width": 4, "n_hourglass": 1, "scale": 4}).eval()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        wide = net(x, x, with_logits=False, disparity_range=(-16, 16))
        default = net(x, x, with_logits=False)
    assert wide["levels"].tolist() == [4.0 * k for k in disparity_levels((-16, 16), 4)]
    assert default["levels"].tolist() == [4.0 * k for k in disparity_levels((-8, 8), 4)]
    assert net.matcher.levels == disparity_levels((-8, 8), 4)


def test_fused_unet_is_a_copy_with_the_same_output():
    from napari_stereo_tem.nets.unet import DislocationUNet

    torch.manual_seed(1)
    net = DislocationUNet(base_channels=4, depth=3, n_classes=1)
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = net.fused()
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), fused(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(vars(net)) == set(vars(DislocationUNet(base_channels=4, depth=3, n_classes=1)))


@pytest.mark.parametrize("src, size", [((1, 3, 4, 5, 3), (8, 10, 5)), ((2, 2, 5, 3, 4), (9, 6, 7)),
                                       ((1, 1, 3, 3, 2), (3, 3, 2))])
def test_axis_by_axis_upsampling_equals_trilinear(src, size):
    from napari_stereo_tem.nets.matcher import _upsample3d

    x = torch.rand(src, generator=torch.Generator().manual_seed(0))
    expected = torch.nn.functional.interpolate(x, size=size, mode="trilinear", align_corners=False)
    got = _upsample3d(x, size)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_fused_stereo_net_matches_the_original():
    torch.manual_seed(2)
    net = StereoNet(unet={"base_channels": 4, "depth": 4}, matcher={"disparity_range": (-8, 8), "width": 4,
                                                                     "n_hourglass": 1}).eval()
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    left, right = torch.rand(1, 1, 32, 48), torch.rand(1, 1, 32, 48)
    fused = net.fused()
    with torch.no_grad():
        a = net(left, right, with_logits=False)
        b = fused(left, right, with_logits=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.features.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.features.modules())  # the original is untouched
    torch.testing.assert_close(a["disparity"], b["disparity"], atol=1e-4, rtol=1e-4)

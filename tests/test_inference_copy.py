"""The cached inference copy of a network: reused while the weights stand, rebuilt when they change."""

import torch

from napari_stereo_tem.nets import DislocationUNet
from napari_stereo_tem.nets.inference import inference_copy


def _model():
    torch.manual_seed(0)
    return DislocationUNet(base_channels=4, depth=3, n_classes=1).eval()


def test_copy_is_reused_until_the_weights_change():
    model = _model()
    first = inference_copy(model)
    assert first is not model and inference_copy(model) is first
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        before = first(x)
        model.head.bias += 1.0          # in place, as an optimiser step
    second = inference_copy(model)
    assert second is not first
    with torch.no_grad():
        assert torch.allclose(second(x), model(x), atol=1e-4)
        assert not torch.allclose(second(x), before, atol=1e-2)
    model.load_state_dict(_model().state_dict())   # loaded weights count as a change too
    assert inference_copy(model) is not second


def test_copy_carries_no_hooks_of_the_original():
    model = _model()
    calls = []
    handle = model.head.register_forward_pre_hook(lambda *_: calls.append(1))
    net = inference_copy(model)
    handle.remove()
    with torch.no_grad():
        net(torch.rand(1, 1, 16, 16))
    assert calls == []


def test_copies_of_different_networks_are_kept_apart():
    a, b = _model(), _model()
    with torch.no_grad():
        b.head.bias += 2.0
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(inference_copy(a)(x), inference_copy(b)(x), atol=1e-2)

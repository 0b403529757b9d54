"""One inference copy per network: BatchNorm folded, channels-last, made once and reused.

Folding and laying out a network costs a deep copy (tens of milliseconds); the
stereo pipeline runs the detector four times and the matcher twice per pair,
and the napari docks run them again on every click. :func:`inference_copy`
keeps the copy beside the network it was made from and makes a new one when
the network's weights have changed since (an optimiser step, a loaded state
dict: every in-place change of a tensor moves its version counter), so a
fine-tuned network is never run with stale weights.
"""

from __future__ import annotations

import threading
import weakref

__all__ = ["inference_copy"]

_copies: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _weights_key(model) -> tuple:
    return tuple((id(t), t.data_ptr(), t._version, t.device, t.dtype)
                 for t in (*model.parameters(), *model.buffers()))


def inference_copy(model):
    """The network's ``fused()`` copy (eval mode, no forward hooks), or the network itself in eval mode.

    The copy is cached per network and rebuilt when any of its parameters or
    buffers has changed, been replaced or moved. The network itself is not changed.
    """
    if not hasattr(model, "fused"):
        return model.eval()
    key = _weights_key(model)
    with _lock:
        cached = _copies.get(model)
        if cached is not None and cached[0] == key:
            return cached[1]
        fused = model.fused()
        for module in fused.modules():   # hooks copied from the original (e.g. cancel checks) stay with it
            module._forward_pre_hooks.clear()
            module._forward_hooks.clear()
        _copies[model] = (key, fused)
        return fused

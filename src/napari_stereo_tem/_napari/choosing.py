"""Default layer choices in the docks: the right layer chosen for the user, and the user's own choice kept.

A combo box of layers (magicgui) picks the first layer of its type, which is often
wrong (a sample's ground truth, or the left view twice). :func:`keep_default`
makes a widget pick with a given rule whenever its choices change, until the
user chooses by hand; a hand choice is then kept while its layer exists.
"""

from __future__ import annotations

from collections.abc import Callable

from .layers import is_truth_layer

__all__ = ["keep_default", "prefer_lines", "stack_problem"]


def prefer_lines(choices):
    """The 3D lines layer a widget should use by default: the latest reconstruction's, never a truth layer."""
    lines = [layer for layer in choices if layer is not None and not is_truth_layer(layer)
             and getattr(layer, "ndim", 0) == 3]
    ours = [layer for layer in lines if (layer.metadata or {}).get("kind") == "stereo-tem lines"]
    named = [layer for layer in ours if layer.name == "3D lines"]
    for group in (named, ours, lines):
        if group:
            return group[-1]
    return None


def stack_problem(layer, *, what: str, item: str, how: str) -> str | None:
    """Why an image layer cannot be a stack of 2D ``item``s ("view", "frame"), or ``None`` when it can.

    ``what`` names the stack in the message when no layer is chosen; ``how`` says how to open one.
    """
    if layer is None:
        return f"choose the image layer of {what}"
    if getattr(layer, "rgb", False) or layer.ndim != 3:
        return f"'{layer.name}' is not a stack of 2D {item}s (it has {layer.ndim} dimensions); {how}"
    if layer.data.shape[0] < 2:
        return f"'{layer.name}' holds {layer.data.shape[0]} {item}; it needs at least two"
    return None


def keep_default(container, combo, pick: Callable) -> None:
    """Choose ``pick(combo.choices)`` in ``combo`` now and whenever ``container``'s choices are reset.

    Stops once the user chooses another layer by hand, and starts again if that layer goes away.
    """
    state = {"picking": False, "by_user": False}

    def on_change(*_):
        if not state["picking"]:
            state["by_user"] = combo.value is not None

    def apply():
        if state["by_user"] and combo.value is not None:
            return
        best = pick([c for c in combo.choices if c is not None])
        if best is None or best is combo.value:
            return
        state["picking"] = True
        try:
            combo.value = best
        finally:
            state["picking"] = False
        state["by_user"] = False

    original = container.reset_choices

    def reset_choices(*args):
        original(*args)
        apply()

    container.reset_choices = reset_choices
    combo.changed.connect(on_change)
    apply()

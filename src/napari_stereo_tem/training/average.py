"""Weight-space averaging of a network and its fine-tuned version.

A network fine-tuned on a wider family of images (the wide micrograph
generator) learns that family but drifts from what carried its predecessor to
images of neither family. Averaging the weights of the two, ``(1 - w) * base +
w * tuned``, keeps one network of the same size and speed that is often more
robust to unseen renderings than either end point (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022: WiSE-FT). The two must share the
architecture and descend from the same weights (the fine-tuned one started from
the base), otherwise their average means nothing.

``stereo-tem train average BASE TUNED --weight W --out PATH`` runs
:func:`average_weights`; the shipped ``detector_v2`` was made this way (see its
sidecar's ``recipe``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checks import InputError
from ..models.store import _read_state, find_version, read_metadata

__all__ = ["average_weights"]


def average_weights(base, tuned, *, weight: float, out_path, command: str | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``(1 - weight) * base + weight * tuned`` as a new weights file with its sidecar.

    Parameters
    ----------
    base, tuned : str or Path
        Two versions (names or ``.safetensors`` paths) of one network class and
        architecture, ``tuned`` fine-tuned from ``base`` (directly or through others).
    weight : float
        Share of ``tuned``, in [0, 1].
    out_path : str or Path
        Weights file to write (suffix ``.safetensors``; the ``.json`` sidecar beside it).
    command : str, optional
        The command line to record.
    overwrite : bool
        Replace an existing ``out_path``; otherwise an existing file is refused.

    Returns
    -------
    Path
        The weights file written. Floating-point tensors (weights, BatchNorm
        statistics) are averaged; integer ones (BatchNorm's step counters) are
        taken from ``base``.

    Raises
    ------
    InputError
        A weight outside [0, 1], different classes, architectures or tensors, or an existing output.
    """
    from safetensors.torch import save_file

    from ..atomic import atomic_write

    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise InputError(f"weight must be a number between 0 and 1, got {weight!r}") from None
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"weight must be between 0 and 1 (the share of the fine-tuned weights), got {weight}")
    paths = [find_version(str(v)) for v in (base, tuned)]
    metas = [read_metadata(p) for p in paths]
    for key in ("class", "architecture"):
        if metas[0].get(key) != metas[1].get(key):
            raise InputError(f"{paths[0]} and {paths[1]} are different networks ({key} {metas[0].get(key)!r} "
                             f"against {metas[1].get(key)!r}); only versions of one network can be averaged")
    states = [_read_state(p) for p in paths]
    if states[0].keys() != states[1].keys():
        missing = sorted(set(states[0]) ^ set(states[1]))[:3]
        raise InputError(f"{paths[0]} and {paths[1]} hold different tensors (e.g. {missing}); "
                         "only versions of one network can be averaged")
    out = Path(out_path).with_suffix(".safetensors")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; choose another --out (or pass overwrite=True / --overwrite)")
    averaged = {}
    for name, a in states[0].items():
        b = states[1][name]
        if a.shape != b.shape:
            raise InputError(f"tensor {name} has shape {tuple(a.shape)} in {paths[0]} and {tuple(b.shape)} in "
                             f"{paths[1]}; only versions of one network can be averaged")
        if a.is_floating_point():
            mixed = (1.0 - weight) * a.to(torch.float64) + weight * b.to(torch.float64)
            averaged[name] = mixed.to(a.dtype).contiguous()
        else:
            averaged[name] = a.clone().contiguous()
    meta = {key: metas[0][key] for key in ("class", "architecture", "normalisation") if key in metas[0]}
    if "postprocess" in metas[0]:
        meta["postprocess"] = {**metas[0]["postprocess"],
                               "note": "copied from the base version; retune with `stereo-tem train "
                                       "detector-postprocess`"}
    meta.update({
        "averaged": {"weight_of_tuned": weight, "base": str(base), "tuned": str(tuned),
                     "base_metadata": metas[0], "tuned_metadata": metas[1]},
        "command": command or f"stereo-tem train average {paths[0]} {paths[1]} --weight {weight} --out {out}",
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: save_file(averaged, str(tmp), metadata={"class": meta.get("class", "")}))
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    atomic_write(out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text + "\n"))
    return out

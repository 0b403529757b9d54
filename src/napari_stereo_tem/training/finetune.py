"""Fine-tuning the networks on the user's training set mixed with synthetic data (DESIGN 3.9).

:func:`finetune_detector` and :func:`finetune_matcher` start from a model
version (``init``), train on crops of the entries of a training set
(:mod:`napari_stereo_tem.models.training_set`) and of a few synthetic scenes
(``synth_fraction`` of every batch), and save the result as a new, named model
version in the user's model directory
(:func:`napari_stereo_tem.models.store.user_models_dir`) with its provenance.

Both are progress generators (:mod:`napari_stereo_tem.progress`): one
:class:`Progress` per optimiser step with the loss in ``info``, so a front end
can plot it and cancel between two steps. A checkpoint
(``<models dir>/<version>.ckpt.pt``) is written every ``checkpoint_every``
steps and when the run is cancelled or fails; ``resume=True`` continues from
it. Checkpoints and weights are read without unpickling code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .loop import RECIPE, Trainer

__all__ = ["finetune_detector", "finetune_matcher", "version_name", "checkpoint_path", "detector_samples",
           "matcher_pairs", "separate_instances"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def version_name(name: str, kind: str) -> str:
    """The model-version name for ``name``: prefixed with ``kind`` (``detector``/``matcher``) if needed.

    The prefix lets :func:`~napari_stereo_tem.models.store.list_versions` tell the
    two kinds apart. Only letters, digits, ``_``, ``.`` and ``-`` are allowed.
    """
    name = str(name).strip()
    if not _NAME.match(name) or name.endswith((".safetensors", ".json", ".pt")):
        raise InputError(f"model name {name!r} must be letters, digits, '_', '.' or '-' (no path, no suffix), "
                         "e.g. 'my_foil_v2'")
    return name if name.startswith(kind) else f"{kind}_{name}"


def checkpoint_path(version: str) -> Path:
    """Where the resumable state of a fine-tuning run of ``version`` lies."""
    from ..models.store import user_models_dir

    return user_models_dir() / f"{version}.ckpt.pt"


def _target_path(name: str, kind: str) -> tuple[str, Path]:
    from ..models.store import user_models_dir

    version = version_name(name, kind)
    path = user_models_dir() / f"{version}.safetensors"
    if path.exists():
        raise InputError(f"model version {version!r} already exists ({path}); choose another name "
                         "(versions are never overwritten)")
    return version, path


def _entry_list(set_dir, *, need_pair: bool) -> list:
    from ..models.training_set import list_entries

    entries = list_entries(set_dir)
    if need_pair:
        entries = [e for e in entries if e.has_pair and e.has_disparity]
    if not entries:
        what = "entries with a pair and known disparities (link lines first)" if need_pair else "entries"
        raise InputError(f"training set {set_dir} has no {what}; add corrections with 'Add to training set'")
    return entries


def _labels(mask) -> np.ndarray:
    mask = np.asarray(mask)
    out = mask.astype(np.uint8, copy=True)
    out[mask > 2] = 1  # any other label painted by the user counts as a dislocation
    return out


def separate_instances(labels: np.ndarray, instances) -> np.ndarray:
    """``labels`` with a background valley wherever two different dislocation instances touch.

    A pixel of class 1 whose 3x3 neighbourhood holds pixels of two different
    instances (ids > 0 in ``instances``) becomes background, so a detector
    trained on the result learns to keep a gap between the dislocations of a
    pile-up that the user separated, instead of one merged band. Without
    ``instances`` the labels are returned unchanged.
    """
    if instances is None:
        return labels
    from scipy import ndimage

    ids = np.asarray(instances).astype(np.int64)
    if ids.shape != labels.shape:
        raise InputError(f"instances of shape {ids.shape} do not match the mask's {labels.shape}")
    none = int(ids.max(initial=0)) + 1      # stands for "no instance" in the minimum
    if none <= 1:
        return labels
    top = ndimage.maximum_filter(ids, size=3)
    bottom = ndimage.minimum_filter(np.where(ids > 0, ids, none), size=3)
    meet = (top > 0) & (bottom < none) & (top != bottom)
    out = labels.copy()
    out[meet & (labels == 1)] = 0
    return out


def detector_samples(set_dir) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(image, mask), ...]`` of every view of a set's entries (images normalised, lines dark).

    Where an entry holds corrected instances (``instances_left``/``instances_right``),
    the mask gets a valley wherever two instances touch (:func:`separate_instances`).
    """
    from ..stereo.detection import normalise_image
    from ..models.training_set import load_entry

    samples = []
    for entry in _entry_list(set_dir, need_pair=False):
        data = load_entry(entry)
        for side in ("left", "right"):
            if side in data and f"mask_{side}" in data:
                labels = separate_instances(_labels(data[f"mask_{side}"]), data.get(f"instances_{side}"))
                samples.append((normalise_image(data[side]), labels))
    return samples


def matcher_pairs(set_dir) -> list[dict]:
    """Prepared pairs (see :func:`~napari_stereo_tem.training.matcher.prepare_pair`) of a set's entries."""
    from ..stereo.detection import normalise_image
    from ..models.training_set import load_entry

    pairs = []
    for entry in _entry_list(set_dir, need_pair=True):
        data = load_entry(entry)
        mask_left = _labels(data["mask_left"]) == 1
        mask_right = _labels(data["mask_right"]) == 1 if "mask_right" in data else np.zeros_like(mask_left)
        disparity = np.where(mask_left, data["disparity_left"], np.nan).astype(np.float32)
        pairs.append({"left": normalise_image(data["left"]), "right": normalise_image(data["right"]),
                      "mask_left": mask_left, "mask_right": mask_right, "disparity": disparity})
    return pairs


def _entry_summary(set_dir) -> list[dict]:
    from ..models.training_set import list_entries

    return [{"name": e.name, "files": {k: v["sha256"] for k, v in e.record.get("files", {}).items()}}
            for e in list_entries(set_dir)]


def _check_run_options(steps: int, batch_size: int, synth_fraction: float, checkpoint_every: int) -> None:
    if steps < 1 or batch_size < 1 or not 0.0 <= synth_fraction <= 1.0 or checkpoint_every < 1:
        raise InputError(f"need steps >= 1, batch_size >= 1, checkpoint_every >= 1 and 0 <= synth_fraction <= 1; "
                         f"got {steps}, {batch_size}, {checkpoint_every}, {synth_fraction}")


def _train(model, batch_loss: Callable[[np.random.Generator], torch.Tensor], *, version: str, steps: int, lr: float,
           seed: int, resume, checkpoint_every: int, stage: str, kind: str,
           n_threads: int | None = None) -> ProgressGenerator[tuple[list, int]]:
    """Fine-tuning's use of :class:`~.loop.Trainer`: no validation, a checkpoint every few steps and on cancel."""
    ckpt = checkpoint_path(version)
    source = None
    if isinstance(resume, (str, Path)):
        source = Path(resume)
        if not source.is_file():
            raise InputError(f"checkpoint {source} does not exist; give the .ckpt.pt of the cancelled run")
    elif resume and ckpt.is_file():
        source = ckpt
    trainer = Trainer(model, steps=steps, lr=lr, seed=seed, checkpoint=ckpt, resume=source,
                      schedule={"max_warmup": 20, "floor": 0.1}, expect={"version": version})
    result = yield from trainer.run(lambda step, rng: batch_loss(rng), checkpoint_every=checkpoint_every,
                                    stage=stage, n_threads=n_threads, state={"version": version, "kind": kind})
    return result["losses"], result["steps"]


def _save_version(model, path: Path, ckpt: Path, metadata: dict) -> None:
    from ..models.store import save_model

    save_model(model, path, metadata)
    if ckpt.exists():
        ckpt.unlink()


def _common_meta(kind, version, init, init_model, set_dir, steps, losses, synth_fraction, seed, command, wall):
    from .. import __version__

    return {"kind": kind, "version": version, "init": init, "init_version": getattr(init_model, "version", None),
            "init_metric": (getattr(init_model, "metadata", {}) or {}).get("metric"),
            "training_set": str(Path(set_dir).resolve()), "entries": _entry_summary(set_dir),
            "steps": steps, "synth_fraction": synth_fraction, "seed": int(seed),
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "loss_history": [round(v, 6) for v in losses], "command": command, "wall_s": wall,
            "package": f"napari-stereo-tem {__version__}", "recipe": RECIPE,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def finetune_detector(set_dir, *, name: str, init: str = "default", steps: int = 200, batch_size: int = 4,
                      crop: int = 96, synth_fraction: float = 0.5, n_synth_scenes: int = 4,
                      scene_shape: tuple[int, int] = (256, 256), lr: float = 5e-4, pos_weight: float = 3.0,
                      seed: int = 0, device="cpu", resume=False, checkpoint_every: int = 25,
                      n_threads: int | None = None, command: str | None = None) -> ProgressGenerator[dict]:
    """Fine-tune a detector version on a training set (+ synthetic scenes); a progress generator.

    Parameters
    ----------
    set_dir : str or Path
        The training set (needs at least one entry).
    name : str
        The new version's name (prefixed ``detector_`` if it does not start so);
        an existing version is never overwritten.
    init : str
        The version (or weights path) to start from; ``"default"`` is the
        selected version (see :func:`~napari_stereo_tem.models.store.select_version`).
    steps, batch_size, crop : int
        Optimiser steps, crops per step, crop side (a multiple of the network's size multiple).
    synth_fraction : float
        Share of each batch drawn from synthetic scenes (0: the set only).
    n_synth_scenes : int
        Synthetic scenes (train seeds) held in memory; ``scene_shape`` their size.
    lr, pos_weight : float
        Peak learning rate; BCE weight of the thin line pixels.
    seed : int
        Seeds crops and synthetic scenes: a run is reproducible.
    device : str or torch.device
    resume : bool, str or Path
        ``True``: continue from the checkpoint of this version if there is one
        (:func:`checkpoint_path`); a path: continue from that checkpoint.
    checkpoint_every : int
        Steps between checkpoints.
    n_threads : int, optional
        Torch CPU threads.
    command : str, optional
        The command line, for the metadata.

    Yields
    ------
    Progress
        ``stage="fine-tune detector"``, ``info={"loss", "loss_avg", "step"}`` per step.

    Returns
    -------
    dict
        ``version``, ``path``, ``losses`` (every step), ``steps``, ``wall_s``.
    """
    from ..models.store import load_detector
    from .detector import detector_batch_loss
    from .detector_data import augment_sample, prepare_view, synth_views

    _check_run_options(steps, batch_size, synth_fraction, checkpoint_every)
    version, path = _target_path(name, "detector")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    samples = detector_samples(set_dir)
    model = load_detector(init, device=device)
    if crop < 16 or crop % model.size_multiple:
        raise InputError(f"crop must be a multiple of {model.size_multiple} and at least 16, got {crop}")
    synth = []
    if synth_fraction > 0:
        from ..synth.seeds import draw_seeds

        scene_seeds = draw_seeds("train", max(1, n_synth_scenes), seed=seed)
        for k, s in enumerate(scene_seeds):
            for image, mask in synth_views(int(s), shape=tuple(scene_shape)):
                norm = prepare_view(image)
                synth.append((norm, mask[: norm.shape[0], : norm.shape[1]]))
            yield Progress(k + 1, len(scene_seeds), "synthetic scenes")
    weight = torch.full((model.n_classes, 1, 1), float(pos_weight), device=device)

    def batch_loss(rng):
        images, masks = [], []
        for _ in range(batch_size):
            pool = synth if synth and rng.random() < synth_fraction else samples
            image, mask = pool[int(rng.integers(len(pool)))]
            a, b = augment_sample(image, mask, rng, crop=crop, invert_prob=0.0)
            images.append(a)
            masks.append(b)
        return detector_batch_loss(model, np.stack(images), np.stack(masks), weight)

    losses, done = yield from _train(model, batch_loss, version=version, steps=steps, lr=lr, seed=seed,
                                     resume=resume, checkpoint_every=checkpoint_every, stage="fine-tune detector",
                                     kind="detector", n_threads=n_threads)
    wall = time.perf_counter() - t0
    meta = _common_meta("detector", version, init, model, set_dir, done, losses, synth_fraction, seed, command, wall)
    meta.update({"batch_size": batch_size, "crop": crop, "lr": lr, "pos_weight": pos_weight,
                 "normalisation": "detection.normalise_image (auto contrast, lines dark)"})
    _save_version(model.cpu() if str(device) != "cpu" else model, path, checkpoint_path(version), meta)
    return {"version": version, "path": str(path), "losses": losses, "steps": done, "wall_s": wall}


def finetune_matcher(set_dir, *, name: str, init: str = "default", steps: int = 200, batch_size: int = 2,
                     crop: tuple[int, int] = (64, 96), synth_fraction: float = 0.5, n_synth_scenes: int = 2,
                     scene_shape: tuple[int, int] = (256, 256), max_shift: int = 6, lr: float = 2e-4,
                     g_disp: float = 1.0, g_var: float = 0.1, g_warp: float = 1.0, g_det: float = 1.0,
                     seed: int = 0, device="cpu", resume=False, checkpoint_every: int = 25,
                     n_threads: int | None = None, command: str | None = None) -> ProgressGenerator[dict]:
    """Fine-tune a matcher version on the set's pairs with known disparities (+ synthetic pairs).

    Parameters are those of :func:`finetune_detector`, plus the crop ``(rows, cols)``,
    the random right-window shift ``max_shift`` and the loss weights of
    :func:`~napari_stereo_tem.nets.losses.matcher_loss` (``g_det`` weighs the
    detection BCE when the feature UNet is not frozen). Only entries holding
    both views and disparity labels are used.

    Yields
    ------
    Progress
        ``stage="fine-tune matcher"``, ``info={"loss", "loss_avg", "step"}`` per step.

    Returns
    -------
    dict
        ``version``, ``path``, ``losses``, ``steps``, ``wall_s``.
    """
    from ..stereo.matching import load_matcher
    from .matcher import batch_loss as matcher_batch_loss
    from .matcher import prepare_pair, stereo_crop

    crop = (int(crop[0]), int(crop[1]))
    _check_run_options(steps, batch_size, synth_fraction, checkpoint_every)
    version, path = _target_path(name, "matcher")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    pairs = matcher_pairs(set_dir)
    model = load_matcher(init, device=device)
    multiple = model.size_multiple
    if crop[0] % multiple or crop[1] % multiple:
        raise InputError(f"crop sides must be multiples of {multiple}, got {crop}")
    small = [p["left"].shape for p in pairs if p["left"].shape[0] < crop[0] or
             p["left"].shape[1] < crop[1] + 2 * max_shift]
    if small:
        raise InputError(f"entries of shape {small[0]} are smaller than the crop {crop} plus 2 x {max_shift} "
                         "columns of shift; use a smaller crop")
    synth = []
    if synth_fraction > 0:
        from ..synth import make_stereo_pair
        from ..synth.seeds import draw_seeds

        scene_seeds = draw_seeds("train", max(1, n_synth_scenes), seed=seed)
        angles = np.random.default_rng([int(seed), 23]).uniform(3.0, 10.0, size=len(scene_seeds))
        for k, (s, a) in enumerate(zip(scene_seeds, angles)):
            synth.append(prepare_pair(make_stereo_pair(int(s), shape=tuple(scene_shape), stereo_angle_deg=float(a))))
            yield Progress(k + 1, len(scene_seeds), "synthetic scenes")

    def batch_loss(rng):
        crops = []
        for _ in range(batch_size):
            pool = synth if synth and rng.random() < synth_fraction else pairs
            crops.append(stereo_crop(pool[int(rng.integers(len(pool)))], rng, crop=crop, max_shift=max_shift))
        return matcher_batch_loss(model, crops, device, g_disp=g_disp, g_var=g_var, g_warp=g_warp, g_det=g_det)[0]

    losses, done = yield from _train(model, batch_loss, version=version, steps=steps, lr=lr, seed=seed,
                                     resume=resume, checkpoint_every=checkpoint_every, stage="fine-tune matcher",
                                     kind="matcher", n_threads=n_threads)
    wall = time.perf_counter() - t0
    meta = _common_meta("matcher", version, init, model, set_dir, done, losses, synth_fraction, seed, command, wall)
    meta.update({"batch_size": batch_size, "crop": list(crop), "lr": lr, "max_shift": max_shift,
                 "loss_weights": {"g_disp": g_disp, "g_var": g_var, "g_warp": g_warp, "g_det": g_det},
                 "normalisation": "detection.normalise_image per view"})
    _save_version(model.cpu() if str(device) != "cpu" else model, path, checkpoint_path(version), meta)
    return {"version": version, "path": str(path), "losses": losses, "steps": done, "wall_s": wall}

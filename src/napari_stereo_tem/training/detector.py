"""Training the dislocation detector on generated scenes (DESIGN 3.4 and 3.8).

The shipped weights (``weights/detector_v1``) come from two runs on a 2-core
CPU with one torch thread (about 50 minutes in all)::

    stereo-tem train detector --steps 2400 --batch-size 8 --crop 160 --seed 1 --lr 0.002 \\
        --pos-weight 3.0 --val-every 200 --n-val 8 --pool-size 128 --threads 1 --out /tmp/detector_v1_base
    stereo-tem train detector --init /tmp/detector_v1_base.safetensors --steps 700 --batch-size 8 \\
        --crop 160 --seed 2 --lr 0.0005 --pos-weight 1.5 --val-every 100 --n-val 16 --pool-size 64 \\
        --threads 1 --out src/napari_stereo_tem/weights/detector_v1

(the exact commands of a weights file are in its JSON sidecar, key ``command``).

The default detector, ``weights/detector_v2``, is ``detector_v1`` fine-tuned on the wide micrograph
generator (``--data mixed``, two CPU runs kept in ``training_runs/``), then averaged with
``detector_v1`` in weight space (:mod:`.average`), 30 % of the fine-tuned weights::

    stereo-tem train average detector_v1 training_runs/detector_v2_cpu_continue/detector_v2.safetensors \
        --weight 0.3 --out src/napari_stereo_tem/weights/detector_v2
    stereo-tem train detector-postprocess src/napari_stereo_tem/weights/detector_v2.safetensors --data stereo,mixed

Its sidecar's ``recipe`` lists every command from scratch. The v1 runs
predate the shared loop of :mod:`.loop`, which draws scene seeds with
:func:`~napari_stereo_tem.synth.seeds.draw_seeds`: rerun today, the same commands see
other training scenes (runs since record the loop's ``recipe`` in their sidecar).

Data: scenes from :func:`napari_stereo_tem.synth.make_stereo_pair` with seeds
drawn from ``TRAIN_SEEDS`` (never ``TEST_SEEDS``); both views of a scene are
used. Scenes live in a pool that is refreshed by one new scene per step, so
the generator is not the bottleneck and every step is reproducible from
``(seed, step)`` alone, which makes resuming exact.

Augmentations: scale 0.7-1.2, rotation -60..60 degrees, flips, brightness
0.8-1.2 (and an offset), Gaussian noise, sometimes a slight blur or a gamma,
and contrast inversion (dark-field look).
Loss: binary cross-entropy with a ``pos_weight`` for the thin lines, on the
dislocation channel and (``n_classes=2``) a distractor channel.
Validation: centreline F1 (2 px) on fixed ``VAL_SEEDS`` scenes every
``val_every`` steps (an "epoch"); the best model is saved to ``out_path``,
the last state to ``<out_path>.ckpt.pt`` for ``resume`` (the loop, checkpoints
and cancel are those of :class:`~.loop.Trainer`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .detector_data import augment_sample, prepare_view, synth_views
from .loop import RECIPE, Trainer

__all__ = ["train_detector", "validate_detector", "tune_postprocess",
           "detector_batch_loss", "faint_zone"]

SceneSource = Callable[[int], list]


def _targets(masks: np.ndarray, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class targets and the loss weight (0 on pixels marked :data:`~..synth.micrograph.MASK_IGNORE`)."""
    from ..synth.micrograph import MASK_IGNORE

    channels = [masks == k + 1 for k in range(n_classes)]
    keep = (masks != MASK_IGNORE).astype(np.float32)[:, None]
    return torch.from_numpy(np.stack(channels, axis=1).astype(np.float32)), torch.from_numpy(keep)


def detector_batch_loss(model, images: np.ndarray, masks: np.ndarray, pos_weight: torch.Tensor) -> torch.Tensor:
    """Weighted BCE of ``model`` on a batch: images ``(B, H, W)`` float32, masks ``(B, H, W)`` uint8.

    Pixels marked :data:`~napari_stereo_tem.synth.micrograph.MASK_IGNORE`
    carry no loss; on CUDA the forward pass runs in bfloat16.
    """
    device = pos_weight.device
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)[:, None]).to(device)
    y, keep = (t.to(device) for t in _targets(masks, model.n_classes))
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(x)
    loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight, reduction="none")
    return (loss * keep).mean()


@torch.no_grad()
def validate_detector(model, samples: list, *, device="cpu") -> float:
    """Mean centreline F1 (2 px) of ``model`` on ``[(image, mask), ...]`` (images normalised)."""
    from ..evaluation.metrics import centreline_scores

    model.eval()
    scores = []
    for image, mask in samples:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
        pred = torch.sigmoid(model(x))[0, 0].float().cpu().numpy() >= 0.5
        scores.append(centreline_scores(pred, mask == 1, ignore=faint_zone(mask))["f1"])
    return float(np.mean(scores))


def faint_zone(mask: np.ndarray) -> np.ndarray:
    """Where a prediction is neither right nor wrong: faint-line pixels (:data:`MASK_IGNORE`) and 2 px around."""
    from scipy.ndimage import binary_dilation

    from ..synth.micrograph import MASK_IGNORE

    return binary_dilation(mask == MASK_IGNORE, iterations=2)


def train_detector(
    *,
    out_path,
    steps: int = 2400,
    batch_size: int = 8,
    crop: int = 160,
    seed: int = 0,
    device="cpu",
    init: str | None = None,
    resume=None,
    n_threads: int | None = None,
    lr: float = 2e-3,
    pos_weight: float = 3.0,
    val_every: int = 200,
    n_val: int = 8,
    scene_shape: tuple[int, int] = (256, 256),
    pool_size: int = 128,
    invert_prob: float = 0.25,
    base_channels: int = 16,
    n_classes: int = 2,
    scene_source: SceneSource | None = None,
    command: str | None = None,
    checkpoint_path=None,
    data: str = "stereo",
    workers: int = 0,
    crops_per_scene: int = 4,
    time_limit: float | None = None,
) -> ProgressGenerator[dict]:
    """Train a :class:`~napari_stereo_tem.nets.DislocationUNet`; a progress generator.

    Parameters
    ----------
    out_path : str or Path
        Weights file of the best model (``.safetensors`` + ``.json`` sidecar).
    steps, batch_size, crop : int
        Optimiser steps, crops per step, crop side in pixels.
    seed : int
        Seeds weights, scene choice and augmentation; a run is reproducible.
    device : str or torch.device
    init : str, optional
        A model version or path to start from (fine-tuning).
    resume : str or Path, optional
        A checkpoint (``<out>.ckpt.pt``) to continue from.
    n_threads : int, optional
        Torch CPU threads.
    scene_source : callable, optional
        ``seed -> [(image, mask), ...]``; default :func:`synth_views` on ``TRAIN_SEEDS``/``VAL_SEEDS``.
    command : str, optional
        The command line recorded in the metadata.
    checkpoint_path : str or Path, optional
        Where the last state goes (default ``<out_path>.ckpt.pt``).
    data : {"stereo", "wide", "mixed"}
        ``"stereo"``: views of the stereo generator in a scene pool (the
        ``detector_v1`` recipe); ``"wide"``: the randomised micrographs of
        :mod:`napari_stereo_tem.synth.micrograph`; ``"mixed"``: 80 % wide,
        20 % stereo (see :mod:`.detector_data`).
    workers : int
        Processes rendering scenes for ``"wide"``/``"mixed"`` (0: in this process).
    crops_per_scene : int
        Augmented crops cut from each scene for ``"wide"``/``"mixed"``.
    time_limit : float, optional
        Seconds of this run after which it validates, saves and stops early
        (the metadata records the step it reached).

    Yields
    ------
    Progress
        One per step (after the scene pool is filled), with the ``info`` of
        :class:`~.loop.Trainer` (``loss``, ``loss_avg``, ``step``) and ``val_f1``, that of the last validation.

    Returns
    -------
    dict
        ``best_val_f1``, ``history`` (per validation), ``wall_s``, ``out_path``.
    """
    from ..models.store import load_detector, save_model
    from ..nets.unet import DislocationUNet
    from ..synth.seeds import draw_seeds
    from .detector_data import DATA_MIXES, crop_batches, wide_validation_set

    if data not in DATA_MIXES:
        raise InputError(f"data must be one of {sorted(DATA_MIXES)}, got {data!r}")
    if steps < 1 or batch_size < 1 or crop < 16 or crop % 8:
        raise InputError(f"need steps >= 1, batch_size >= 1 and crop a multiple of 8 >= 16; got "
                         f"steps={steps}, batch_size={batch_size}, crop={crop}")
    out_path = Path(out_path).with_suffix(".safetensors")
    ckpt_path = Path(checkpoint_path) if checkpoint_path else out_path.with_suffix(".ckpt.pt")
    if n_threads:
        import cv2

        cv2.setNumThreads(int(n_threads))
    torch.manual_seed(seed)
    if scene_source is None:
        def scene_source(s, _shape=tuple(scene_shape)):
            return synth_views(int(s), shape=_shape)

    init_meta = None
    if init is not None:
        model = load_detector(init, device="cpu")
        init_meta = {k: model.metadata.get(k) for k in ("command", "seed", "steps", "wall_s", "init", "init_metadata")}
    else:
        model = DislocationUNet(in_channels=1, base_channels=base_channels, depth=4, n_classes=n_classes)
    model = model.to(device)
    trainer = Trainer(model, steps=steps, lr=lr, seed=seed, checkpoint=ckpt_path, resume=resume)
    weight = torch.full((model.n_classes, 1, 1), float(pos_weight), device=device)

    # Validation scenes, fixed for the run.
    if data != "stereo":
        val = wide_validation_set(seed, n_val, stereo_share=DATA_MIXES[data])
    else:
        val = []
        for s in draw_seeds("val", max(1, (n_val + 1) // 2), seed=seed):
            for img, m in scene_source(int(s)):
                norm = prepare_view(img)
                val.append((norm, m[: norm.shape[0], : norm.shape[1]]))
    val = val[:n_val]

    def load_scene(s):
        views = []
        for img, m in scene_source(int(s)):
            norm = prepare_view(img)
            views.append((norm.astype(np.float16), np.ascontiguousarray(m[: norm.shape[0], : norm.shape[1]])))
        return views

    if data != "stereo":  # an ordered stream of crops, rendered by worker processes
        batches = crop_batches(seed=seed, batch_size=batch_size, crop=crop, start_step=trainer.start,
                               stereo_share=DATA_MIXES[data], crops_per_scene=crops_per_scene, workers=workers)

        def batch_loss(step, rng):
            images, masks = next(batches)
            return detector_batch_loss(model, images, masks, weight)
        after_step = None
    else:  # a scene pool: slot j holds seeds[j] at first; step t replaces slot t % P by seeds[P + t]
        pool_size = max(1, int(pool_size))
        seeds = draw_seeds("train", pool_size + steps, seed=seed)
        pool = []
        for j in range(pool_size):
            last = list(range(j, trainer.start, pool_size))
            pool.append(load_scene(seeds[pool_size + last[-1]] if last else seeds[j]))
            yield Progress(j + 1, pool_size, "scene pool")

        def batch_loss(step, rng):
            images, masks = [], []
            for _ in range(batch_size):
                views = pool[int(rng.integers(len(pool)))]
                image, mask = views[int(rng.integers(len(views)))]
                a, b = augment_sample(image.astype(np.float32), mask, rng, crop=crop, invert_prob=invert_prob)
                images.append(a)
                masks.append(b)
            return detector_batch_loss(model, np.stack(images), np.stack(masks), weight)

        def after_step(step):
            pool[step % pool_size] = load_scene(seeds[pool_size + step])

    def save_best(record):
        save_model(model, out_path, {
            "command": command, "seed": int(seed), "steps": record["step"], "batch_size": batch_size, "crop": crop,
            "data_version": _data_version(), "metric": {"val_centreline_f1_2px": record["val_f1"], "n_val": len(val)},
            "train_seed_range": "synth.seeds.TRAIN_SEEDS", "device": str(device),
            "torch_threads": torch.get_num_threads(), "wall_s": record["wall_s"], "init": init,
            "init_metadata": init_meta, "pos_weight": pos_weight, "lr": lr,
            "normalisation": "detection.normalise_image (robust percentiles 0.5/99.5, lines dark)",
            "data": data, "crops_per_scene": crops_per_scene if data != "stereo" else None, "recipe": RECIPE,
        })

    result = yield from trainer.run(
        batch_loss, validate=lambda: {"val_f1": validate_detector(model, val, device=device)}, score="val_f1",
        val_every=val_every, on_best=save_best, after_step=after_step, time_limit=time_limit, n_threads=n_threads)
    return {"best_val_f1": result["best"], "history": result["history"], "wall_s": result["wall_s"],
            "out_path": str(out_path), "checkpoint": result["checkpoint"]}


def _data_version() -> str:
    from .. import __version__

    try:
        from ..synth import DATA_VERSION  # type: ignore[attr-defined]
    except ImportError:
        DATA_VERSION = None
    return f"napari-stereo-tem {__version__} synth" + (f" {DATA_VERSION}" if DATA_VERSION else "")


def tune_postprocess(weights, *, seed: int = 0, n_val: int = 60, thresholds=(0.4, 0.5, 0.6, 0.7),
                     min_sizes=(0, 20, 50), data: str = "mixed") -> dict:
    """Choose the detector's threshold and minimum piece size on validation images; write them to its sidecar.

    Parameters
    ----------
    weights : str or Path
        A detector weights file (``.safetensors`` with its ``.json``).
    seed, n_val, data
        The validation images (:func:`~.detector_data.wide_validation_set`; seeds from ``VAL_SEEDS`` only).
        ``data`` may name several mixes (``"stereo,mixed"``): ``n_val`` images of each, and the
        setting with the best mean of their mean F1s is chosen.
    thresholds, min_sizes : sequences
        The grid.

    Returns
    -------
    dict
        The ``postprocess`` record written (best setting, its mean centreline F1, the grid).
    """
    import json

    from ..atomic import atomic_write_text
    from ..stereo.detection import predict_probability, probability_to_labels
    from ..evaluation.metrics import centreline_scores
    from ..models.store import load_detector
    from .detector_data import DATA_MIXES, wide_validation_set

    mixes = [part.strip() for part in str(data).split(",") if part.strip()]
    unknown = [m for m in mixes if m not in DATA_MIXES]
    if not mixes or unknown:
        raise InputError(f"data must name mixes among {sorted(DATA_MIXES)} (comma-separated), got {data!r}")
    path = Path(weights).with_suffix(".safetensors")
    model = load_detector(str(path))
    per_mix = {}
    for mix in mixes:
        grid = {(t, m): [] for t in thresholds for m in min_sizes}
        for image, mask in wide_validation_set(seed, n_val, stereo_share=DATA_MIXES[mix]):
            prob = predict_probability(image, model, contrast="bright_field", scale=None)
            ignore = faint_zone(mask)
            for (t, m), scores in grid.items():
                pred = probability_to_labels(prob, threshold=t, min_size=m) == 1
                scores.append(centreline_scores(pred, mask == 1, ignore=ignore)["f1"])
        per_mix[mix] = {key: float(np.mean(v)) for key, v in grid.items()}
    means = {key: float(np.mean([per_mix[mix][key] for mix in mixes])) for key in per_mix[mixes[0]]}
    (threshold, min_size), best = max(means.items(), key=lambda kv: kv[1])
    record = {"threshold": threshold, "min_size": min_size, "val_f1_tuned": round(best, 4),
              "val_f1_raw_0.5": round(means.get((0.5, 0), float("nan")), 4),
              "tuned_on": f"mean centreline F1 (2 px, faint pixels neutral) of {n_val} validation images "
                          f"(wide_validation_set(seed={seed}, data=...)) of each of {mixes}, the mean over the "
                          f"mixes; normalised as given, no resizing; grid threshold {list(thresholds)} x "
                          f"min_size {list(min_sizes)}",
              "grid": {f"{t}/{m}": round(v, 4) for (t, m), v in means.items()}}
    if len(mixes) > 1:
        record["grid_per_data"] = {mix: {f"{t}/{m}": round(v, 4) for (t, m), v in values.items()}
                                   for mix, values in per_mix.items()}
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["postprocess"] = record
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return record

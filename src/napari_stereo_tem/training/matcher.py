"""Training the stereo matcher on generated pairs (DESIGN 3.5 and 3.8).

The shipped weights come from the command recorded in their JSON sidecar
(key ``command``), of the form::

    stereo-tem train matcher --steps 2600 --batch-size 4 --crop 128,192 --seed 1 --threads 1 \\
        --time-limit 4500 --out src/napari_stereo_tem/weights/matcher_v1

Data: pairs from :func:`napari_stereo_tem.synth.make_stereo_pair` with seeds
from ``TRAIN_SEEDS`` (validation on ``VAL_SEEDS``; ``TEST_SEEDS`` are never
touched), stereo angles drawn in ``angle_range``. A pool of scenes is refreshed
by one scene every ``refresh_every`` steps; every step is reproducible from
``(seed, step)``, so resuming is exact. Each crop takes the same window of the
two views, the right one moved by a random whole number of columns (which
spreads the disparities over the signed range), with flips (a horizontal flip
negates the disparity), brightness and noise per view.

Network: :class:`~napari_stereo_tem.nets.matcher.StereoNet` (a UNet feature
extractor, trained jointly with a detection BCE from scratch, or frozen when
started from a detector version) and the matcher. Loss: ``g_det * BCE`` on both
views plus :func:`~napari_stereo_tem.nets.losses.matcher_loss` (disparity,
variance and warp terms, each switchable for the ablation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .loop import RECIPE, Trainer

__all__ = ["train_matcher", "stereo_crop", "validate_matcher", "prepare_pair"]


def prepare_pair(sample) -> dict:
    """Normalised views, dislocation masks and left disparity of a :class:`StereoSample`."""
    from ..stereo.detection import normalise_image

    return {"left": normalise_image(sample.left, contrast="bright_field"),
            "right": normalise_image(sample.right, contrast="bright_field"),
            "mask_left": (sample.mask_left == 1), "mask_right": (sample.mask_right == 1),
            "disparity": np.where(sample.mask_left == 1, sample.disparity_left, np.nan).astype(np.float32)}


def stereo_crop(pair: dict, rng: np.random.Generator, *, crop: tuple[int, int], max_shift: int = 10,
                on_line: float = 0.8) -> dict:
    """One augmented training crop of a prepared pair.

    Parameters
    ----------
    pair : dict
        From :func:`prepare_pair`.
    rng : numpy Generator
    crop : (rows, cols)
    max_shift : int
        The right window is moved by ``s`` in ``[-max_shift, max_shift]`` columns,
        so the disparity becomes ``d - s``.
    on_line : float
        Chance of centring the crop on a dislocation pixel.

    Returns
    -------
    dict of ndarray
        ``left``, ``right`` float32, ``mask_left``, ``mask_right`` bool, ``disparity`` (NaN off lines), all ``crop``.
    """
    rows, cols = pair["left"].shape
    ch, cw = crop
    s = int(rng.integers(-max_shift, max_shift + 1))
    lo_c, hi_c = max(0, -s), min(cols - cw, cols - cw - s)
    ys, xs = np.nonzero(pair["mask_left"])
    if len(ys) and rng.random() < on_line:
        k = int(rng.integers(len(ys)))
        r0 = int(np.clip(ys[k] - ch // 2 + rng.integers(-ch // 4, ch // 4 + 1), 0, rows - ch))
        c0 = int(np.clip(xs[k] - cw // 2 + rng.integers(-cw // 4, cw // 4 + 1), lo_c, hi_c))
    else:
        r0 = int(rng.integers(0, rows - ch + 1))
        c0 = int(rng.integers(lo_c, hi_c + 1))
    win_l = (slice(r0, r0 + ch), slice(c0, c0 + cw))
    win_r = (slice(r0, r0 + ch), slice(c0 + s, c0 + s + cw))
    out = {"left": pair["left"][win_l].astype(np.float32), "right": pair["right"][win_r].astype(np.float32),
           "mask_left": pair["mask_left"][win_l], "mask_right": pair["mask_right"][win_r],
           "disparity": pair["disparity"][win_l] - s}
    if rng.random() < 0.5:  # vertical flip: rows swap, disparities unchanged
        out = {k: v[::-1] for k, v in out.items()}
    if rng.random() < 0.5:  # horizontal flip: x -> -x negates the disparity
        out = {k: v[:, ::-1] for k, v in out.items()}
        out["disparity"] = -out["disparity"]
    for view in ("left", "right"):
        img = out[view] * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)
        sigma = rng.uniform(0.0, 0.05)
        if sigma > 0:
            img = img + rng.normal(0.0, sigma, img.shape)
        out[view] = img.astype(np.float32)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _batch(crops: list, device) -> dict:
    def stack(key, dtype):
        return torch.from_numpy(np.stack([c[key] for c in crops])[:, None].astype(dtype)).to(device)
    return {"left": stack("left", np.float32), "right": stack("right", np.float32),
            "mask_left": stack("mask_left", np.float32), "mask_right": stack("mask_right", np.float32),
            "disparity": stack("disparity", np.float32)}


def batch_loss(model, crops: list, device, *, g_disp: float, g_var: float, g_warp: float, g_det: float):
    """The matcher's training loss on a list of :func:`stereo_crop` crops; returns ``(loss, parts)``.

    :func:`~napari_stereo_tem.nets.losses.matcher_loss`, plus ``g_det`` times the
    detection loss of both views when the features are trained too.
    """
    from ..nets.losses import matcher_loss

    b = _batch(crops, device)
    out = model(b["left"], b["right"])
    prob_right = torch.sigmoid(out["logits_right"][:, :1])
    loss, parts = matcher_loss(out, b["disparity"], b["mask_left"] > 0, prob_right=prob_right,
                               g_disp=g_disp, g_var=g_var, g_warp=g_warp, scale=model.matcher.scale)
    if g_det and not model.freeze_features:
        weight = torch.tensor(3.0, device=device)
        det = 0.5 * (F.binary_cross_entropy_with_logits(out["logits_left"][:, :1], b["mask_left"], pos_weight=weight)
                     + F.binary_cross_entropy_with_logits(out["logits_right"][:, :1], b["mask_right"],
                                                          pos_weight=weight))
        loss = loss + g_det * det
    return loss, parts


@torch.no_grad()
def validate_matcher(model, pairs: list, *, device="cpu") -> dict:
    """Mean raw and refined disparity metrics of ``model`` on prepared pairs (ground-truth masks).

    Returns
    -------
    dict
        ``epe``, ``gt3`` (raw, on every left dislocation pixel) and ``epe_refined``,
        ``gt3_refined``, ``coverage_refined`` (after :func:`~napari_stereo_tem.stereo.matching.refine_disparity`).
    """
    from ..stereo.matching import disparity_metrics, predict_disparity, refine_disparity

    raw, ref = [], []
    for p in pairs:
        disparity, _ = predict_disparity(p["left"], p["right"], model, device=device)
        raw.append(disparity_metrics(disparity, p["disparity"], p["mask_left"]))
        refined = refine_disparity(disparity, p["mask_left"], p["mask_right"])
        ref.append(disparity_metrics(refined, p["disparity"], p["mask_left"]))

    def mean(rows, key):
        vals = [r[key] for r in rows if r["n"]]
        return float(np.mean(vals)) if vals else float("nan")
    return {"epe": mean(raw, "epe"), "gt3": mean(raw, "gt3"), "epe_refined": mean(ref, "epe"),
            "gt3_refined": mean(ref, "gt3"), "coverage_refined": mean(ref, "coverage")}


def train_matcher(
    *,
    out_path,
    steps: int = 2600,
    batch_size: int = 4,
    crop: tuple[int, int] = (128, 192),
    seed: int = 0,
    device="cpu",
    g_disp: float = 1.0,
    g_var: float = 0.1,
    g_warp: float = 1.0,
    g_det: float = 1.0,
    features_from: str | None = None,
    base_channels: int = 8,
    width: int = 16,
    n_hourglass: int = 2,
    disparity_range: tuple[int, int] = (-24, 24),
    angle_range: tuple[float, float] = (2.0, 12.0),
    scene_shape: tuple[int, int] = (512, 512),
    pool_size: int = 16,
    refresh_every: int = 2,
    max_shift: int = 8,
    lr: float = 1e-3,
    val_every: int = 200,
    n_val: int = 3,
    time_limit_s: float | None = None,
    resume=None,
    checkpoint_path=None,
    n_threads: int | None = None,
    command: str | None = None,
) -> ProgressGenerator[dict]:
    """Train a :class:`~napari_stereo_tem.nets.matcher.StereoNet`; a progress generator.

    Parameters
    ----------
    out_path : str or Path
        Weights of the best model (by validation EPE): ``.safetensors`` + ``.json``.
    steps, batch_size : int
    crop : (rows, cols)
        Crop size; multiples of 8.
    seed : int
        Seeds weights, scenes, crops; a run is reproducible.
    g_disp, g_var, g_warp : float
        Weights of the disparity, variance and warp losses (0 switches one off).
    g_det : float
        Weight of the detection BCE on the feature UNet (ignored when frozen).
    features_from : str, optional
        A detector version or path: its UNet becomes the (frozen) feature network.
        Default: a UNet of ``base_channels`` trained jointly from scratch.
    width, n_hourglass, disparity_range
        Matcher architecture, see :class:`~napari_stereo_tem.nets.matcher.StereoMatcher`.
    angle_range : (float, float)
        Stereo angles (degrees) of the training scenes, drawn uniformly.
    time_limit_s : float, optional
        Stop (after validating and saving) once this call has run this many seconds.
    resume : str or Path, optional
        A checkpoint ``<out>.ckpt.pt`` to continue from.
    checkpoint_path : str or Path, optional
        Where the resumable state goes (default ``<out>.ckpt.pt``).
    n_threads : int, optional
        Torch CPU threads.
    command : str, optional
        The command line recorded in the metadata.

    Yields
    ------
    Progress
        One per step, ``info={"loss", "epe"}`` (moving-average loss, last validation EPE).

    Returns
    -------
    dict
        ``best_epe``, ``history``, ``wall_s``, ``out_path``, ``checkpoint``.
    """
    from ..models.store import save_model
    from ..nets.matcher import StereoNet
    from ..synth import make_stereo_pair
    from ..synth.seeds import draw_seeds

    crop = (int(crop[0]), int(crop[1]))
    if steps < 1 or batch_size < 1 or crop[0] % 8 or crop[1] % 8 or min(crop) < 32:
        raise InputError(f"need steps >= 1, batch_size >= 1 and crop sides multiples of 8 >= 32; got "
                         f"steps={steps}, batch_size={batch_size}, crop={crop}")
    if not (g_disp or g_var or g_warp):
        raise InputError("at least one of g_disp, g_var, g_warp must be non-zero")
    out_path = Path(out_path).with_suffix(".safetensors")
    ckpt_path = Path(checkpoint_path) if checkpoint_path else out_path.with_suffix(".ckpt.pt")
    torch.manual_seed(seed)

    matcher_kwargs = {"width": width, "n_hourglass": n_hourglass, "disparity_range": tuple(disparity_range)}
    if features_from is not None:
        from ..models.store import load_detector

        detector = load_detector(features_from, device="cpu")
        model = StereoNet(unet=detector.architecture(), matcher=matcher_kwargs, freeze_features=True)
        model.features.load_state_dict(detector.state_dict())
    else:
        model = StereoNet(unet={"base_channels": base_channels, "depth": 4, "n_classes": 1},
                          matcher=matcher_kwargs)
    model = model.to(device)
    trainer = Trainer(model, steps=steps, lr=lr, seed=seed, checkpoint=ckpt_path, resume=resume)

    val = [prepare_pair(make_stereo_pair(int(s), shape=(256, 256), stereo_angle_deg=8.0))
           for s in draw_seeds("val", n_val, seed=seed)]
    scene_seeds = draw_seeds("train", pool_size + steps // refresh_every + 1, seed=seed)
    angles = np.random.default_rng([int(seed), 19]).uniform(*angle_range, size=len(scene_seeds))

    def scene(k: int) -> dict:
        return prepare_pair(make_stereo_pair(int(scene_seeds[k]), shape=tuple(scene_shape),
                                             stereo_angle_deg=float(angles[k])))

    # slot j holds scene j at first; at step t with t % refresh_every == 0, slot (t // r) % P gets scene P + t // r
    pool = []
    for j in range(pool_size):
        refreshes = [t // refresh_every for t in range(0, trainer.start, refresh_every)
                     if (t // refresh_every) % pool_size == j]
        pool.append(scene(pool_size + refreshes[-1] if refreshes else j))
        yield Progress(j + 1, pool_size, "scene pool")

    hp = {"g_disp": g_disp, "g_var": g_var, "g_warp": g_warp, "g_det": g_det}

    def loss_of_batch(step, rng):
        crops = [stereo_crop(pool[int(rng.integers(len(pool)))], rng, crop=crop, max_shift=max_shift)
                 for _ in range(batch_size)]
        return batch_loss(model, crops, device, **hp)

    def after_step(step):
        if step % refresh_every == 0:
            k = step // refresh_every
            pool[k % pool_size] = scene(pool_size + k)

    def save_best(record):
        metrics = {k: v for k, v in record.items() if k not in ("step", "loss", "wall_s")}
        save_model(model, out_path, {
            "command": command, "seed": int(seed), "steps": record["step"], "planned_steps": steps,
            "batch_size": batch_size, "crop": list(crop), "loss_weights": hp,
            "angle_range_deg": list(angle_range), "scene_shape": list(scene_shape),
            "features_from": features_from, "lr": lr,
            "metric": {"val_pairs": len(val), "val_shape": [256, 256], "val_angle_deg": 8.0,
                       "mask": "ground-truth dislocation pixels", **metrics, "step": record["step"],
                       "loss": record["loss"], "wall_s": record["wall_s"]},
            "train_seed_range": "synth.seeds.TRAIN_SEEDS", "val_seed_range": "synth.seeds.VAL_SEEDS",
            "device": str(device), "torch_threads": torch.get_num_threads(), "wall_s": record["wall_s"],
            "normalisation": "detection.normalise_image(contrast='bright_field') per view", "recipe": RECIPE,
        })

    result = yield from trainer.run(
        loss_of_batch, validate=lambda: validate_matcher(model, val, device=device), score="epe", maximise=False,
        val_every=val_every, on_best=save_best, after_step=after_step, time_limit=time_limit_s, n_threads=n_threads)
    return {"best_epe": result["best"], "history": result["history"], "wall_s": result["wall_s"],
            "out_path": str(out_path), "checkpoint": result["checkpoint"]}

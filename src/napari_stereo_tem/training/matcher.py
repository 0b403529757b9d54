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

import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .schedule import optimise, restore_checkpoint, warmup_cosine, write_checkpoint

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


def _seeds(split: str, seed: int, n: int) -> np.ndarray:
    from ..synth.seeds import SPLITS

    rng = np.random.default_rng([int(seed), 13 if split == "train" else 17])
    return rng.integers(SPLITS[split].start, SPLITS[split].stop, size=n)


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
        Stop (after validating and saving) once this much time has passed.
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
    from ..nets.matcher import StereoNet
    from ..synth import make_stereo_pair
    from ..models.store import save_model

    crop = (int(crop[0]), int(crop[1]))
    if steps < 1 or batch_size < 1 or crop[0] % 8 or crop[1] % 8 or min(crop) < 32:
        raise InputError(f"need steps >= 1, batch_size >= 1 and crop sides multiples of 8 >= 32; got "
                         f"steps={steps}, batch_size={batch_size}, crop={crop}")
    if not (g_disp or g_var or g_warp):
        raise InputError("at least one of g_disp, g_var, g_warp must be non-zero")
    out_path = Path(out_path).with_suffix(".safetensors")
    ckpt_path = Path(checkpoint_path) if checkpoint_path else out_path.with_suffix(".ckpt.pt")
    if n_threads:
        torch.set_num_threads(int(n_threads))
    torch.manual_seed(seed)
    t_start = time.perf_counter()

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
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = warmup_cosine(optimiser, steps)
    start, best, history, wall_before = 0, float("inf"), [], 0.0
    if resume is not None:
        state = restore_checkpoint(resume, model, optimiser, schedule)
        start, best, history = int(state["step"]), float(state["best_epe"]), list(state["history"])
        wall_before = float(state.get("wall_s", 0.0))

    val = [prepare_pair(make_stereo_pair(int(s), shape=(256, 256), stereo_angle_deg=8.0))
           for s in _seeds("val", seed, n_val)]
    scene_seeds = _seeds("train", seed, pool_size + steps // refresh_every + 1)
    angles = np.random.default_rng([int(seed), 19]).uniform(*angle_range, size=len(scene_seeds))

    def scene(k: int) -> dict:
        return prepare_pair(make_stereo_pair(int(scene_seeds[k]), shape=tuple(scene_shape),
                                             stereo_angle_deg=float(angles[k])))

    # slot j holds scene j at first; at step t with t % refresh_every == 0, slot (t // r) % P gets scene P + t // r
    pool = []
    for j in range(pool_size):
        refreshes = [t // refresh_every for t in range(0, start, refresh_every) if (t // refresh_every) % pool_size == j]
        pool.append(scene(pool_size + refreshes[-1] if refreshes else j))
        yield Progress(j + 1, pool_size, "scene pool")

    metrics = history[-1] if history else {"epe": float("nan")}
    ema = None
    wall = wall_before
    hp = {"g_disp": g_disp, "g_var": g_var, "g_warp": g_warp, "g_det": g_det}
    for step in range(start, steps):
        model.train()
        rng = np.random.default_rng([int(seed), int(step)])
        crops = [stereo_crop(pool[int(rng.integers(len(pool)))], rng, crop=crop, max_shift=max_shift)
                 for _ in range(batch_size)]
        loss, parts = batch_loss(model, crops, device, g_disp=g_disp, g_var=g_var, g_warp=g_warp, g_det=g_det)
        value = optimise(loss, optimiser, schedule, params)
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        if step % refresh_every == 0:
            k = step // refresh_every
            pool[k % pool_size] = scene(pool_size + k)

        done = step + 1
        wall = wall_before + time.perf_counter() - t_start
        out_of_time = time_limit_s is not None and wall >= time_limit_s
        if done % val_every == 0 or done == steps or out_of_time:
            metrics = validate_matcher(model, val, device=device)
            metrics.update({"step": done, "loss": float(ema), "wall_s": wall})
            history.append(metrics)
            if metrics["epe"] < best:
                best = metrics["epe"]
                save_model(model, out_path, {
                    "command": command, "seed": int(seed), "steps": done, "planned_steps": steps,
                    "batch_size": batch_size, "crop": list(crop), "loss_weights": hp,
                    "angle_range_deg": list(angle_range), "scene_shape": list(scene_shape),
                    "features_from": features_from, "lr": lr,
                    "metric": {"val_pairs": len(val), "val_shape": [256, 256], "val_angle_deg": 8.0,
                               "mask": "ground-truth dislocation pixels", **metrics},
                    "train_seed_range": "synth.seeds.TRAIN_SEEDS", "val_seed_range": "synth.seeds.VAL_SEEDS",
                    "device": str(device), "torch_threads": torch.get_num_threads(), "wall_s": wall,
                    "normalisation": "detection.normalise_image(contrast='bright_field') per view",
                })
            write_checkpoint(ckpt_path, model, optimiser, schedule, step=done, best_epe=best,
                             history=history, wall_s=wall)
        yield Progress(done, steps, "train", {"loss": float(ema), "epe": float(metrics.get("epe", np.nan)),
                                              **{k: float(v) for k, v in parts.items()}})
        if out_of_time:
            break
    return {"best_epe": best, "history": history, "wall_s": wall, "out_path": str(out_path),
            "checkpoint": str(ckpt_path)}

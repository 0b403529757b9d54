"""Training crops for the detector from the wide micrograph generator (and some stereo views).

Crops come as an ordered stream: scene ``i`` of a run is fully determined by
``(seed, i)``, its crops by the scene's seed, so the stream is the same with
0 or 16 worker processes and a resumed run continues it exactly. Workers
render scenes and cut augmented crops in parallel; the training loop only
stacks them (on a GPU the generator, not the network, is the bottleneck).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["DATA_MIXES", "scene_plan", "scene_crops", "crop_batches", "wide_validation_set", "synth_views",
           "augment_sample", "prepare_view"]

#: ``--data`` choices: share of scenes taken from the stereo generator.
DATA_MIXES = {"stereo": 1.0, "wide": 0.0, "mixed": 0.2}


def synth_views(seed: int, *, shape: tuple[int, int] = (256, 256)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Both views of one synthetic scene as ``[(image, mask), (image, mask)]``.

    ``image`` is float32 (rows, cols) in [0, 1]; ``mask`` uint8 with 1 =
    dislocation, 2 = distractor.
    """
    from ..synth import make_stereo_pair

    pair = make_stereo_pair(int(seed), shape=tuple(shape))
    return [(pair.left, pair.mask_left), (pair.right, pair.mask_right)]


def augment_sample(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *, crop: int,
                   invert_prob: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """One random crop of ``(image, mask)`` with the training augmentations.

    Parameters
    ----------
    image : ndarray, float32, shape (rows, cols)
        Normalised to [0, 1], lines dark.
    mask : ndarray, uint8, shape (rows, cols)
    rng : numpy Generator
    crop : int
        Side of the output.
    invert_prob : float
        Chance of inverting the contrast (bright lines).

    Returns
    -------
    image : ndarray, float32, shape (crop, crop)
    mask : ndarray, uint8, shape (crop, crop)
    """
    import cv2

    rows, cols = image.shape
    scale = rng.uniform(0.7, 1.2)
    angle = rng.uniform(-60.0, 60.0)
    half = crop / (2 * scale)
    cy = rng.uniform(min(half, rows / 2), max(rows - half, rows / 2))
    cx = rng.uniform(min(half, cols / 2), max(cols - half, cols / 2))
    matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(scale))
    matrix[:, 2] += np.array([crop / 2 - cx, crop / 2 - cy])
    border = cv2.BORDER_REFLECT_101
    out = cv2.warpAffine(image.astype(np.float32), matrix, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=border)
    lab = cv2.warpAffine(mask, matrix, (crop, crop), flags=cv2.INTER_NEAREST, borderMode=border)
    if rng.random() < 0.5:
        out, lab = out[:, ::-1], lab[:, ::-1]
    if rng.random() < 0.5:
        out, lab = out[::-1], lab[::-1]
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < 0.3:
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    out = out * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)
    sigma = rng.uniform(0.0, 0.08)
    if sigma > 0:
        out = out + rng.normal(0.0, sigma, out.shape)
    if rng.random() < invert_prob:
        out = 1.0 - out
    return np.ascontiguousarray(out, dtype=np.float32), np.ascontiguousarray(lab)


def prepare_view(image: np.ndarray, multiple: int = 8) -> np.ndarray:
    """A generated view normalised as at inference (lines dark), cropped to a multiple of ``multiple``."""
    from ..stereo.detection import normalise_image

    norm = normalise_image(image, contrast="bright_field")
    rows, cols = norm.shape
    return norm[: rows // multiple * multiple, : cols // multiple * multiple]


def scene_plan(seed: int, index: int, *, stereo_share: float, split: str = "train") -> tuple[int, str]:
    """Scene ``index`` of run ``seed``: ``(scene_seed, kind)`` with kind ``"stereo"`` or ``"micrograph"``."""
    from ..synth.seeds import SPLITS

    seeds = SPLITS[split]
    rng = np.random.default_rng([int(seed), 7, int(index)])
    scene_seed = int(rng.integers(seeds.start, seeds.stop))
    return scene_seed, ("stereo" if rng.random() < stereo_share else "micrograph")


def _normalised_views(scene_seed: int, kind: str, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Images normalised as at inference (lines dark), with their masks."""
    from ..stereo.detection import normalise_image

    if kind == "stereo":
        return [(normalise_image(img, contrast="bright_field"), m) for img, m in synth_views(scene_seed, shape=(size, size))]
    from ..synth.micrograph import make_micrograph

    micro = make_micrograph(scene_seed, shape=(size, size))
    contrast = "dark_field" if micro.bright_lines else "bright_field"
    return [(normalise_image(micro.image, contrast=contrast), micro.mask)]


def scene_crops(task) -> list[tuple[np.ndarray, np.ndarray]]:
    """``task = (scene_seed, kind, crop, n_crops, scene_size)`` -> ``n_crops`` augmented crops (float16, uint8)."""
    scene_seed, kind, crop, n_crops, size = task
    views = _normalised_views(int(scene_seed), kind, int(size))
    rng = np.random.default_rng([int(scene_seed), 97])
    out = []
    for k in range(int(n_crops)):
        image, mask = views[k % len(views)]
        a, b = augment_sample(image, mask, rng, crop=int(crop), invert_prob=0.0)
        out.append((a.astype(np.float16), b))
    return out


def crop_batches(*, seed: int, batch_size: int, crop: int, start_step: int = 0, stereo_share: float = 0.2,
                 crops_per_scene: int = 4, scene_size: int = 256, workers: int = 0) -> Iterator[tuple]:
    """Endless stream of ``(images (B, crop, crop) float32, masks (B, crop, crop) uint8)`` batches.

    Batch ``t`` is the same whatever ``workers`` is; ``start_step`` skips the
    batches a resumed run already used.
    """
    first = start_step * batch_size
    scene, offset = divmod(first, crops_per_scene)

    def tasks():
        i = scene
        while True:
            scene_seed, kind = scene_plan(seed, i, stereo_share=stereo_share)
            yield (scene_seed, kind, crop, crops_per_scene, scene_size)
            i += 1

    def crops(results):
        skip = offset
        for group in results:
            for item in group[skip:]:
                yield item
            skip = 0

    if workers and workers > 0:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(int(workers), initializer=_worker_init)
        stream = crops(pool.imap(scene_crops, tasks(), chunksize=2))
    else:
        pool = None
        stream = crops(map(scene_crops, tasks()))
    try:
        while True:
            items = [next(stream) for _ in range(batch_size)]
            yield (np.stack([a for a, _ in items]).astype(np.float32), np.stack([b for _, b in items]))
    finally:
        if pool is not None:
            pool.terminate()


def _worker_init():
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def wide_validation_set(seed: int, n: int, *, size: int = 256, stereo_share: float = 0.2) -> list:
    """``n`` fixed validation images ``[(normalised image, mask)]`` from the validation seeds."""
    out = []
    i = 0
    while len(out) < n:
        scene_seed, kind = scene_plan(seed, i, stereo_share=stereo_share, split="val")
        out.extend(_normalised_views(scene_seed, kind, size)[:1])
        i += 1
    return out[:n]

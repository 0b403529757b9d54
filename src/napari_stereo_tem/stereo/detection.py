"""Dislocation detection: image -> probability map -> labels -> skeleton polylines (DESIGN 3.4).

Typical use::

    model = load_detector()                      # shipped weights
    prob = predict_probability(image, model)     # float32 (rows, cols) in [0, 1]
    labels = probability_to_labels(prob, **label_settings(model))  # uint8, 1 = dislocation (napari Labels)
    lines = skeleton_polylines(labels == 1)      # list of (n, 2) arrays of (x, y), one per branch

Images of any size and dtype are accepted; large ones are processed in
overlapping tiles whose predictions are blended with a tapering weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import InputError, check_image
from ..nets.inference import inference_copy
from ..progress import Progress, ProgressGenerator, cancel_between_layers, check_cancelled, drive
from .specimen_field import ignored_share, without_frame

__all__ = [
    "CONTRASTS",
    "SCALE_CANDIDATES",
    "ridge_sigma",
    "DetectionSettings",
    "choose_settings",
    "normalise_image",
    "iter_predict_probability",
    "predict_probability",
    "probability_to_labels",
    "label_settings",
    "ignored_share",
    "skeleton_polylines",
]

CONTRASTS = ("auto", "bright_field", "dark_field")


def _lines_are_bright(image: np.ndarray) -> bool:
    """Guess the contrast: are thin features brighter than their surroundings?

    Thin lines make the high-pass residual (image minus a 6 px-wide local
    median-like blur) skewed towards their side; diffuse backgrounds and
    noise are nearly symmetric.
    """
    import cv2

    small = image
    step = max(1, int(np.ceil(max(image.shape) / 1024)))
    if step > 1:
        small = image[::step, ::step]
    blur = cv2.GaussianBlur(small, (0, 0), 6.0)
    fine = cv2.GaussianBlur(small, (0, 0), 1.0)
    residual = (fine - blur).ravel()
    residual = residual - residual.mean()
    spread = residual.std()
    if spread == 0:
        return False
    skew = float(np.mean(residual**3) / spread**3)
    return skew > 0


def normalise_image(image, *, contrast: str = "auto", percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Scale an image of any numeric dtype to float32 in [0, 1], lines dark.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        uint8, uint16, int or float image.
    contrast : {"auto", "bright_field", "dark_field"}
        Bright field has dark dislocation lines (kept as is); dark field has
        bright lines (inverted so lines are dark). ``"auto"`` guesses from the
        skew of the image's fine detail.
    percentiles : (float, float)
        Robust low/high percentiles mapped to 0 and 1 (values beyond are clipped).

    Returns
    -------
    ndarray, float32, shape (rows, cols)
    """
    if contrast not in CONTRASTS:
        raise InputError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    array = check_image(image, name="image").astype(np.float32, copy=False)
    low, high = np.percentile(array, percentiles)
    if high <= low:
        low, high = float(array.min()), float(array.max())
    out = np.clip((array - low) / (high - low), 0.0, 1.0).astype(np.float32)
    if contrast == "dark_field" or (contrast == "auto" and _lines_are_bright(out)):
        out = 1.0 - out
    return out


#: Resize factors tried by ``scale="auto"`` (1: as is; 0.25: lines four times thinner). Those that would
#: shrink the image below :data:`MIN_SHRUNK_SIDE` are left out: the smallest serve only large camera
#: images (4k and more) of wide lines.
SCALE_CANDIDATES = (1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09, 0.0625)
#: Centreline px per 1000 px² (of the image as the detector sees it, resized) below which no factor's
#: detections are trusted to choose it.
MIN_DENSITY = 1.5
#: A smaller factor is chosen only when it finds this many times the line density of the image as is.
SHRINK_GAIN = 1.5
#: Images whose dominant ridges are thinner than this Gaussian sigma (px) are never shrunk (lines of a
#: sigma of 2.5 px with a bright fringe, or fainter ones of 1.5-2 px, on a bend contour, are read as
#: distractors or fringes at full size and found when shrunk).
WIDE_SIGMA = 1.5
#: Side (px, after resizing) of the central preview the automatic settings run the detector on.
PREVIEW_SIDE = 384
#: Shorter side (px) an image keeps at the least when shrunk (the detector needs context).
MIN_SHRUNK_SIDE = 192
_RIDGE_SIGMAS = tuple(float(v) for v in np.geomspace(0.5, 8.0, 10))


def _ridge_scores(image: np.ndarray, *, quantile: float = 0.99) -> np.ndarray:
    """Strongest (``quantile``) scale-normalised dark-ridge strength at each of :data:`_RIDGE_SIGMAS`.

    The strength is ``s**1.5 * (l1 - |l2|)`` (Hessian eigenvalues ``l1 >= l2``;
    Lindeberg's ridge normalisation, gamma = 3/4, peaks at a line's own sigma),
    computed on the image resized by whole octaves so every scale costs the same.
    """
    import cv2
    from scipy import ndimage

    scores = []
    for sigma in _RIDGE_SIGMAS:
        step = max(1, int(sigma / 1.6))
        small = image if step == 1 else cv2.resize(image, (image.shape[1] // step, image.shape[0] // step),
                                                   interpolation=cv2.INTER_AREA)
        t = sigma / step
        hxx = ndimage.gaussian_filter(small, t, order=(0, 2))
        hyy = ndimage.gaussian_filter(small, t, order=(2, 0))
        hxy = ndimage.gaussian_filter(small, t, order=(1, 1))
        half, root = 0.5 * (hxx + hyy), np.sqrt(0.25 * (hxx - hyy) ** 2 + hxy**2)
        ridge = np.clip(half + root - np.abs(half - root), 0.0, None) * t**1.5 * step**-0.5
        scores.append(float(np.quantile(ridge[4:-4, 4:-4] if min(ridge.shape) > 16 else ridge, quantile)))
    return np.asarray(scores)


def ridge_sigma(norm: np.ndarray, *, max_side: int = 768) -> float:
    """Gaussian sigma (px) of the image's dominant dark or bright ridges, above what its noise alone gives.

    ``norm`` is a normalised image (:func:`normalise_image`); the central
    ``max_side`` crop is measured, at half resolution when it is at least
    256 px a side (sigmas from 1 to 16 px). An image of 2048 px a side or more
    (a large camera's) is measured on a central crop ``k`` times larger, binned
    ``2k`` times (``k`` = its shorter side // 1024), so that its lines are in view
    and in range however wide. A cheap first look: thin-line images (most
    synthetic and low-magnification ones) are never resized.
    """
    import cv2

    rows, cols = norm.shape
    big = max(1, min(rows, cols) // 1024)
    side = max_side * big
    r0, c0 = max(0, (rows - side) // 2), max(0, (cols - side) // 2)
    crop = np.ascontiguousarray(norm[r0:r0 + side, c0:c0 + side], dtype=np.float32)
    step = 2 * big if min(crop.shape) >= 256 else 1
    if step > 1:
        crop = cv2.resize(crop, (crop.shape[1] // step, crop.shape[0] // step), interpolation=cv2.INTER_AREA)
    diff = np.diff(crop, axis=1)
    noise_std = 1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2)
    floor = _ridge_scores(np.random.default_rng(0).normal(0.0, noise_std, crop.shape).astype(np.float32))
    best = 0.0
    for image in (crop, 1.0 - crop):
        score = _ridge_scores(image) - floor
        if score.max() > 0:
            best = max(best, _RIDGE_SIGMAS[int(np.argmax(score))])
    return float(best * step) if best > 0 else float("nan")


@dataclass
class DetectionSettings:
    """How an image is fed to the detector.

    Attributes
    ----------
    contrast : {"bright_field", "dark_field"}
    scale : float
        Resize factor applied before detection.
    density : dict
        ``{"bright_field": [...], "dark_field": [...]}``: the detected
        centreline length per 1000 px² of image at each of ``scales``
        (empty when nothing was chosen automatically).
    scales : tuple of float
    ridge_sigma : float, optional
        Width (Gaussian sigma, px) of the image's dominant ridges (:func:`ridge_sigma`),
        when it was measured to decide whether to try shrinking at all.
    frame_share : float
        Share of the image that is a flat frame or vacuum (:func:`without_frame`), filled and ignored.
    """

    contrast: str
    scale: float
    density: dict = field(default_factory=dict)
    scales: tuple = ()
    ridge_sigma: float | None = None
    frame_share: float = 0.0

    def as_dict(self) -> dict:
        return {"contrast": self.contrast, "scale": self.scale, "scales": list(self.scales),
                "ridge_sigma_px": None if self.ridge_sigma is None else round(float(self.ridge_sigma), 2),
                "density": {k: [round(float(v), 4) for v in vals] for k, vals in self.density.items()},
                "frame_share": round(float(self.frame_share), 4)}


def _line_density(norm: np.ndarray, model, factor: float, *, preview: int,
                  frame: np.ndarray | None = None) -> tuple[float, float]:
    """What the detector finds at ``factor``: centreline length (px of the original image) per 1000 px², and
    the lines' median depth below the local background (``norm`` has lines dark; 0 when none are found).

    The depth tells a line from the faint fringes beside a wide line of the other polarity, which the
    detector also draws as thin lines (two per line) when the image is seen the wrong way round.
    """
    import cv2
    from skimage.morphology import skeletonize

    rows, cols = norm.shape
    side = int(min(preview / factor, max(rows, cols)))
    r0, c0 = max(0, (rows - side) // 2), max(0, (cols - side) // 2)
    crop = norm[r0:r0 + side, c0:c0 + side]
    # the density is per px² of the field: a frame (filled) in the crop is not counted as area
    field_share = 1.0 if frame is None else max(float(1.0 - frame[r0:r0 + side, c0:c0 + side].mean()), 1e-3)
    if factor != 1.0:
        crop = cv2.resize(crop, (max(16, round(crop.shape[1] * factor)), max(16, round(crop.shape[0] * factor))),
                          interpolation=cv2.INTER_AREA)
    prob = drive(_iter_tiles(crop, model, tile=512, overlap=64))
    check_cancelled()
    labels = probability_to_labels(prob, **label_settings(model))
    centre = skeletonize(labels == 1)
    if frame is not None:  # nor is what is drawn on its fill (the detection itself leaves the frame empty)
        inside = frame[r0:r0 + side, c0:c0 + side].astype(np.uint8)
        centre &= cv2.resize(inside, centre.shape[::-1], interpolation=cv2.INTER_NEAREST) == 0
    length = centre.sum() / factor
    depth = 0.0
    if centre.any():  # the median of a 31 px window: the background beside a line a few px wide
        grey = np.clip(np.asarray(crop) * 255.0, 0, 255).astype(np.uint8)
        background = cv2.medianBlur(grey, 31).astype(np.float32) / 255.0
        depth = float(np.median(background[centre] - crop[centre]))
    return 1000.0 * float(length) / float(field_share * crop.shape[0] * crop.shape[1] / factor**2), max(depth, 0.0)


def choose_settings(image, model, *, contrast: str = "auto", scale="auto", preview: int = PREVIEW_SIDE,
                    scales=SCALE_CANDIDATES) -> DetectionSettings:
    """Decide the contrast and the resize factor with which ``model`` sees ``image`` best.

    First the width of the image's dominant ridges is measured
    (:func:`ridge_sigma`); below :data:`WIDE_SIGMA` the image is used as it
    is; an image is never shrunk below :data:`MIN_SHRUNK_SIDE` pixels.
    Otherwise, for each contrast to decide and each candidate factor, the detector runs
    on a central preview (``preview`` px a side after resizing) and the
    density of the centrelines it finds is measured. Lines too wide for the
    detector (high magnification) give almost nothing until the image is
    shrunk enough, so the chosen factor is the **largest** one reaching 80 %
    of the best density, and a factor below 1 only when it finds at least
    :data:`SHRINK_GAIN` times the density of the image as it is. The factor is searched in bright field (or the
    given contrast); dark field is then tried at the same factors. Each
    polarity's strength is the length of the lines found times their depth
    below the local background, summed over the factors (seen the wrong way
    round, the faint fringes beside wide lines are found as thin lines of
    little depth, and only at full size); dark field is chosen when it beats
    bright field by 30 %; when neither beats the other by 30 % (a detector
    that finds lines of both polarities), the skew of the image's fine
    detail decides.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
    model : DislocationUNet
    contrast : {"auto", "bright_field", "dark_field"}
        A given contrast is kept.
    scale : "auto", float or None
        A given factor (``None``: 1) is kept.
    preview : int
    scales : sequence of float
        Candidate factors, each in (0, 1].

    Returns
    -------
    DetectionSettings
    """
    image, frame = without_frame(image)
    return _choose_settings(image, frame, model, contrast=contrast, scale=scale, preview=preview, scales=scales)


def _choose_settings(image, frame, model, *, contrast: str = "auto", scale="auto", preview: int = PREVIEW_SIDE,
                     scales=SCALE_CANDIDATES) -> DetectionSettings:
    """:func:`choose_settings` of an image whose frame (``None``: none) is already filled (:func:`without_frame`)."""
    if contrast not in CONTRASTS:
        raise InputError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    if scale is None:
        scale = 1.0
    if not isinstance(scale, str):
        scale = float(scale)
        if not (np.isfinite(scale) and 0.05 <= scale <= 4.0):
            raise InputError(f"scale must be 'auto' or a factor between 0.05 and 4, got {scale}")
    elif scale != "auto":
        raise InputError(f"scale must be 'auto', None or a number, got {scale!r}")
    frame_share = 0.0 if frame is None else float(frame.mean())
    if contrast != "auto" and scale != "auto":
        return DetectionSettings(contrast=contrast, scale=float(scale), frame_share=frame_share)
    # one normalisation serves every look below (dark field is its inverse, as in normalise_image)
    bright = normalise_image(image, contrast="bright_field")
    views = {"bright_field": bright, "dark_field": 1.0 - bright}
    factors = tuple(float(f) for f in scales) if scale == "auto" else (float(scale),)
    sigma = None
    if scale == "auto":
        side = min(bright.shape)
        factors = tuple(f for f in factors if f >= 1.0 or f * side >= MIN_SHRUNK_SIDE) or (1.0,)
    if scale == "auto" and len(factors) > 1 and 1.0 in factors:
        sigma = ridge_sigma(bright)
        if not sigma >= WIDE_SIGMA:       # thin lines (or none): the detector sees the image as it is
            factors = (1.0,)

    def pick(vals):
        best = max(vals)
        as_is = dict(zip(factors, vals)).get(1.0)
        # nothing convincing at any factor: leave the image as it is. Judged per px² as the detector sees
        # it: the same scene sampled eight times finer holds an eighth of the line per px² of the image.
        if max(v / f for f, v in zip(factors, vals)) < MIN_DENSITY:
            return 1.0 if as_is is not None else factors[0]
        for f, v in zip(factors, vals):
            # shrinking must find clearly more line (resizing costs position accuracy on thin lines)
            if v >= 0.8 * best and (as_is is None or f == 1.0 or v >= SHRINK_GAIN * as_is):
                return f
        return 1.0 if as_is is not None else factors[int(np.argmax(vals))]

    # the factor is searched in the given contrast (bright field when undecided) ...
    first = "bright_field" if contrast == "auto" else contrast
    found = {first: {f: _line_density(views[first], model, f, preview=preview, frame=frame) for f in factors}}
    factor = pick([found[first][f][0] for f in factors])
    chosen = first
    if contrast == "auto":   # ... then dark field is tried at the same factors
        found["dark_field"] = {f: _line_density(views["dark_field"], model, f, preview=preview, frame=frame)
                               for f in factors}
        # each polarity's strength: line length times the lines' depth, summed over the factors. The faint
        # fringes beside wide lines, seen the wrong way round, give thin lines at full size only, of little
        # depth; the lines themselves keep their depth when shrunk.
        strength = {name: sum(length * depth for length, depth in found[name].values()) for name in found}
        if strength["dark_field"] > 1.3 * strength[first]:
            chosen = "dark_field"
            factor = pick([found["dark_field"][f][0] for f in factors])
        elif strength[first] <= 1.3 * strength["dark_field"] and _lines_are_bright(bright):
            chosen = "dark_field"     # the detector sees both alike: the skew of the fine detail decides
            factor = pick([found["dark_field"][f][0] for f in factors])
    density = {name: [found[name][f][0] for f in factors] for name in found}
    return DetectionSettings(contrast=chosen, scale=float(factor) if scale == "auto" else float(scale),
                             density=density, scales=factors, ridge_sigma=sigma, frame_share=frame_share)


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return sorted(set(starts))


def _blend_weight(shape: tuple[int, int], overlap: int) -> np.ndarray:
    """A weight that ramps linearly from ~0 to 1 over ``overlap`` pixels at every edge."""
    ramps = []
    for n in shape:
        ramp = np.ones(n, np.float32)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (np.arange(k, dtype=np.float32) + 1) / (k + 1)
            ramp[:k] = edge
            ramp[n - k:] = np.minimum(ramp[n - k:], edge[::-1])
        ramps.append(ramp)
    return np.outer(ramps[0], ramps[1])


def iter_predict_probability(
    image,
    model=None,
    *,
    device="cpu",
    tile: int = 512,
    overlap: int = 64,
    contrast: str = "auto",
    scale="auto",
    all_classes: bool = False,
    flips: int = 1,
) -> ProgressGenerator[np.ndarray]:
    """Generator form of :func:`predict_probability`: yields a :class:`Progress` per tile."""
    if model is None:
        from ..models.store import load_detector

        model = load_detector(device=device)
    if tile < 32 or overlap < 0 or overlap >= tile // 2:
        raise InputError(f"need tile >= 32 and 0 <= overlap < tile/2, got tile={tile}, overlap={overlap}")
    if flips not in (1, 2, 4):
        raise InputError(f"flips must be 1 (none), 2 (left-right) or 4 (and up-down), got {flips!r}")
    image, frame = without_frame(image)  # once: the settings and the detection see the same filled image
    settings = _choose_settings(image, frame, model, contrast=contrast, scale=scale)
    return (yield from _iter_predict_filled(image, frame, model, settings, tile=tile, overlap=overlap,
                                            all_classes=all_classes, flips=flips))


def _iter_predict_filled(image, frame, model, settings: DetectionSettings, *, tile: int = 512, overlap: int = 64,
                         all_classes: bool = False, flips: int = 1) -> ProgressGenerator[np.ndarray]:
    """:func:`iter_predict_probability` of an image already filled (:func:`without_frame`) with its settings
    decided (:func:`_choose_settings`): a caller that needs both does each once."""
    import cv2

    norm = normalise_image(image, contrast=settings.contrast)
    full_rows, full_cols = norm.shape
    if settings.scale != 1.0:
        size = (max(8, round(full_cols * settings.scale)), max(8, round(full_rows * settings.scale)))
        norm = cv2.resize(norm, size, interpolation=cv2.INTER_AREA)
    out = yield from _iter_tiles(norm, model, tile=tile, overlap=overlap, flips=flips)
    if settings.scale != 1.0:
        out = np.stack([cv2.resize(channel, (full_cols, full_rows), interpolation=cv2.INTER_LINEAR) for channel in out])
    if frame is not None:
        out[:, frame] = 0.0  # nothing is found in the frame
    return out.astype(np.float32) if all_classes else np.ascontiguousarray(out[0], dtype=np.float32)


def _iter_tiles(norm: np.ndarray, model, *, tile: int, overlap: int, flips: int = 1) -> ProgressGenerator[np.ndarray]:
    """Per-class probabilities ``(n_classes, rows, cols)`` of a normalised image, tile by tile.

    ``flips`` > 1 averages the tile's probabilities over mirrored copies (run as one batch).
    """
    rows, cols = norm.shape
    multiple = model.size_multiple
    tile = max(multiple, tile // multiple * multiple)
    # pad (reflect) so every side is a multiple of the network's stride and at least one tile or less
    pad_r = (-rows) % multiple
    pad_c = (-cols) % multiple
    padded = np.pad(norm, ((0, pad_r), (0, pad_c)), mode="reflect") if (pad_r or pad_c) else norm
    prows, pcols = padded.shape
    th, tw = min(tile, prows), min(tile, pcols)
    step_r, step_c = max(1, th - overlap), max(1, tw - overlap)
    starts = [(r, c) for r in _tile_starts(prows, th, step_r) for c in _tile_starts(pcols, tw, step_c)]
    weight = _blend_weight((th, tw), overlap) if len(starts) > 1 else np.ones((th, tw), np.float32)
    n_classes = model.n_classes
    acc = np.zeros((n_classes, prows, pcols), np.float32)
    wsum = np.zeros((prows, pcols), np.float32)
    net = inference_copy(model)  # BatchNorm folded, channels-last: the caller's model is not changed
    param = next(net.parameters())
    for i, (r, c) in enumerate(starts):
        patch = torch.from_numpy(np.ascontiguousarray(padded[r:r + th, c:c + tw]))
        with torch.inference_mode(), cancel_between_layers(net):
            batch = patch[None, None]
            if flips > 1:
                mirrored = [batch.flip(-1)] + ([batch.flip(-2), batch.flip(-1, -2)] if flips == 4 else [])
                batch = torch.cat([batch, *mirrored])
            probs = torch.sigmoid(net(batch.to(device=param.device, dtype=param.dtype))).float().cpu()
            undo = [probs[0]]
            if flips > 1:
                undo.append(probs[1].flip(-1))
            if flips == 4:
                undo += [probs[2].flip(-2), probs[3].flip(-1, -2)]
            prob = torch.stack(undo).mean(0).numpy()
        acc[:, r:r + th, c:c + tw] += prob * weight
        wsum[r:r + th, c:c + tw] += weight
        yield Progress(i + 1, len(starts), "detect")
    return (acc / wsum)[:, :rows, :cols]


def predict_probability(
    image,
    model=None,
    *,
    device="cpu",
    tile: int = 512,
    overlap: int = 64,
    n_threads: int | None = None,
    contrast: str = "auto",
    scale="auto",
    all_classes: bool = False,
    flips: int = 1,
) -> np.ndarray:
    """Dislocation probability for every pixel of an image.

    Parameters
    ----------
    image : array_like, shape (rows, cols)
        Any numeric dtype; normalised with :func:`normalise_image`.
    model : DislocationUNet, optional
        Defaults to the shipped detector (:func:`napari_stereo_tem.models.store.load_detector`).
    device : str or torch.device
        Where to run when ``model`` is None (a given model runs where it is).
    tile, overlap : int
        Tile side and overlap in pixels; images up to ``tile`` run in one go.
    n_threads : int, optional
        Torch CPU threads to use during this call (restored afterwards).
    contrast : {"auto", "bright_field", "dark_field"}
        Dark lines (bright field) or bright lines (dark field); ``"auto"``
        lets the detector decide (see :func:`choose_settings`).
    scale : "auto", float or None
        Factor by which the image is resized before detection (the
        probabilities are resized back): ``"auto"`` picks the factor at which
        the detector finds lines best, so that wide lines of high
        magnifications look as they did in training; ``None`` or ``1``: as is.
    all_classes : bool
        Return every output class ``(n_classes, rows, cols)`` (class 0 is
        dislocation, class 1 distractor when the model has it).
    flips : {1, 2, 4}
        Average over mirrored copies of each tile (2: left-right, 4: and up-down);
        as many times the work, a little steadier on real images.

    Returns
    -------
    ndarray, float32, shape (rows, cols)
        Probabilities in [0, 1].
    """
    previous = torch.get_num_threads()
    if n_threads:
        torch.set_num_threads(int(n_threads))
    try:
        return drive(iter_predict_probability(image, model, device=device, tile=tile, overlap=overlap,
                                              contrast=contrast, scale=scale, all_classes=all_classes, flips=flips))
    finally:
        if n_threads:
            torch.set_num_threads(previous)


def probability_to_labels(prob, *, threshold: float = 0.5, min_size: int = 0) -> np.ndarray:
    """Threshold a probability map into a uint8 label image (a napari Labels layer).

    Parameters
    ----------
    prob : ndarray, shape (rows, cols) or (n_classes, rows, cols)
        From :func:`predict_probability`.
    threshold : float
        Probability at or above which a pixel is labelled.
    min_size : int
        Connected pieces (8-connectivity) of a class smaller than this many
        pixels are dropped (isolated specks are rarely dislocations).

    Returns
    -------
    ndarray, uint8, shape (rows, cols)
        0 background, 1 dislocation, 2 distractor (only with per-class input;
        dislocation wins where both pass).
    """
    prob = np.asarray(prob)
    if prob.ndim == 2:
        prob = prob[None]
    if prob.ndim != 3:
        raise InputError(f"prob must be (rows, cols) or (n_classes, rows, cols), got shape {prob.shape}")
    labels = np.zeros(prob.shape[1:], np.uint8)
    for k in range(prob.shape[0] - 1, -1, -1):
        on = prob[k] >= threshold
        if min_size > 1 and on.any():
            from skimage.morphology import remove_small_objects

            on = remove_small_objects(on, max_size=int(min_size) - 1, connectivity=2)
        labels[on] = k + 1
    return labels


def label_settings(model) -> dict:
    """Keyword arguments of :func:`probability_to_labels` recommended for ``model``.

    They come from the model's metadata (key ``postprocess``, tuned on
    validation scenes, never on test scenes); ``{"threshold": 0.5,
    "min_size": 0}`` when it has none.
    """
    post = (getattr(model, "metadata", None) or {}).get("postprocess", {})
    return {"threshold": float(post.get("threshold", 0.5)), "min_size": int(post.get("min_size", 0))}


def skeleton_polylines(mask, *, min_branch_length: float = 5) -> list[np.ndarray]:
    """One polyline per skeleton branch of a binary mask, junctions kept, spurs removed.

    The branches are traced by :mod:`napari_stereo_tem.stereo.skeleton_graph`
    (the paths skan gives, with nothing to compile).

    Parameters
    ----------
    mask : array_like of bool, shape (rows, cols)
        Dislocation pixels (e.g. ``labels == 1``).
    min_branch_length : float
        Branches ending in a free end (spurs and isolated bits) shorter than
        this, in pixels, are removed, repeatedly until none is left.

    Returns
    -------
    list of ndarray, float64, shape (n, 2)
        ``(x, y)`` pixel coordinates along each branch, in path order. Branches
        meeting at a junction all contain the junction pixel.
    """
    from .skeleton_graph import skeleton_branches

    return skeleton_branches(mask, min_branch_length=min_branch_length)

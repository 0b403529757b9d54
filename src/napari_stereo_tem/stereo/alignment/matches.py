"""Correspondences between two tilts that do not depend on keypoints alone.

1. The global shift, by phase correlation of the band-passed views (several
   candidate peaks are kept: a strong parallax smears the peak).
2. Dense correlation: a grid of patches of the left view is searched for in the
   right view around each candidate shift (normalised cross-correlation,
   :func:`cv2.matchTemplate`), and every accepted match is refined to a fraction
   of a pixel by ECC (:func:`cv2.findTransformECC`, translation only). Patches
   that are masked, textureless, or whose correlation peak is ambiguous or
   ridge-shaped are dropped.
3. Blobs without descriptors: local extrema of the band-passed views (small
   particles, precipitates, line ends). Every left blob is paired with every right
   blob of the same sign within a search radius of a candidate shift; true pairs
   all fall on the one line of the tilt geometry in displacement space, false ones
   scatter, so a robust line fit picks them out (each blob kept once). This works
   where patches fail: thick foils seen at large tilt steps, whose features move
   by different amounts within one patch, and contrast that changes between views.
4. SIFT on the band-passed, CLAHE-equalised views, with the masks.

Coordinates are ``(x, y)`` pixels of the images given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from ...progress import check_cancelled
from .masks import erode, gaussian

__all__ = ["Correspondences", "find_correspondences", "candidate_shifts"]

#: Codes of :attr:`Correspondences.source`.
SOURCES = ("dense", "sift", "guide", "manual", "blob", "sift-plain")


@dataclass
class Correspondences:
    """Matched points: ``right[i]`` shows what ``left[i]`` shows.

    Attributes
    ----------
    left, right : ndarray, shape (n, 2)
        ``(x, y)`` pixels.
    source : ndarray of int, shape (n,)
        Index into :data:`SOURCES`.
    sigma : ndarray, shape (n,)
        Standard error (px) of each displacement after refinement
        (:func:`~.refine.refine_correspondences`); NaN where not known.
    """

    left: np.ndarray
    right: np.ndarray
    source: np.ndarray
    sigma: np.ndarray | None = None

    def __post_init__(self):
        if self.sigma is None:
            self.sigma = np.full(len(self.left), np.nan)

    @classmethod
    def empty(cls) -> "Correspondences":
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, dtype=int))

    def __len__(self) -> int:
        return len(self.left)

    def concat(self, other: "Correspondences") -> "Correspondences":
        return Correspondences(np.vstack([self.left, other.left]), np.vstack([self.right, other.right]),
                               np.concatenate([self.source, other.source]), np.concatenate([self.sigma, other.sigma]))

    def subset(self, keep) -> "Correspondences":
        """The correspondences selected by a boolean mask or index array."""
        return Correspondences(self.left[keep], self.right[keep], self.source[keep], self.sigma[keep])

    def counts(self) -> dict:
        """Number of correspondences per source."""
        return {name: int((self.source == i).sum()) for i, name in enumerate(SOURCES) if (self.source == i).any()}


def candidate_shifts(a: np.ndarray, b: np.ndarray, *, n_peaks: int = 3, max_fraction: float = 0.3) -> list:
    """Candidate displacements ``(dx, dy)`` of the content from ``a`` to ``b``, strongest first.

    Phase correlation of the Hann-windowed views; the correlation surface is
    smoothed a little (parallax spreads the peak along the epipolar direction)
    and its ``n_peaks`` highest separated maxima within ``max_fraction`` of the
    field are returned.
    """
    rows, cols = a.shape
    window = np.outer(np.hanning(rows), np.hanning(cols))
    fa, fb = np.fft.rfft2(a * window), np.fft.rfft2(b * window)
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.fftshift(np.fft.irfft2(cross, s=a.shape))
    surface = gaussian(surface, 1.5)
    cy, cx = rows // 2, cols // 2
    ys, xs = np.mgrid[0:rows, 0:cols]
    far = (np.abs(ys - cy) > max_fraction * rows) | (np.abs(xs - cx) > max_fraction * cols)
    surface[far] = -np.inf
    peaks = []
    sep = max(6, int(0.03 * min(rows, cols)))
    for _ in range(n_peaks):
        idx = int(np.argmax(surface))
        py, px = divmod(idx, cols)
        if not np.isfinite(surface[py, px]):
            break
        peaks.append((float(px - cx), float(py - cy)))
        surface[max(py - sep, 0):py + sep + 1, max(px - sep, 0):px + sep + 1] = -np.inf
    return peaks


def _subpixel(res: np.ndarray, py: int, px: int) -> tuple[float, float, float]:
    """Parabolic peak offset ``(dx, dy)`` and the anisotropy of the peak (ratio of curvatures)."""
    c = res[py, px]
    dxx = res[py, px + 1] - 2 * c + res[py, px - 1]
    dyy = res[py + 1, px] - 2 * c + res[py - 1, px]
    dxy = (res[py + 1, px + 1] - res[py + 1, px - 1] - res[py - 1, px + 1] + res[py - 1, px - 1]) / 4.0
    dxx, dyy, dxy = float(dxx), float(dyy), float(dxy)
    mid, spread = 0.5 * (dxx + dyy), float(np.hypot(0.5 * (dxx - dyy), dxy))
    low, high = mid - spread, mid + spread  # the Hessian's eigenvalues (2x2, in closed form)
    if high >= 0:  # not a maximum in every direction: a ridge or a saddle
        return 0.0, 0.0, np.inf
    gx, gy = 0.5 * float(res[py, px + 1] - res[py, px - 1]), 0.5 * float(res[py + 1, px] - res[py - 1, px])
    det = dxx * dyy - dxy * dxy  # > 0: both eigenvalues negative
    ox = -(dyy * gx - dxy * gy) / det  # the full 2D quadratic: a tilted ridge needs the cross term
    oy = -(dxx * gy - dxy * gx) / det
    return float(np.clip(ox, -1, 1)), float(np.clip(oy, -1, 1)), float(low / high)


_ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)


def _match_patch(tpl: np.ndarray, b: np.ndarray, cover_b: np.ndarray, cx: int, cy: int, shift, *, search: int,
                 min_score: float, max_anisotropy: float, refine: bool):
    """Top-left ``(x, y)`` in ``b`` of ``tpl`` (the patch of ``a`` at top-left ``(cx - half, cy - half)``), and the peak."""
    rows, cols = b.shape
    patch = tpl.shape[0]
    half = patch // 2
    tx, ty = cx + int(round(shift[0])), cy + int(round(shift[1]))
    y0, y1, x0, x1 = ty - half - search, ty + half + search, tx - half - search, tx + half + search
    if y0 < 0 or x0 < 0 or y1 > rows or x1 > cols or cover_b[ty, tx] < 0.9:
        return None
    res = cv2.matchTemplate(b[y0:y1, x0:x1], tpl, cv2.TM_CCOEFF_NORMED)
    py, px = np.unravel_index(int(np.argmax(res)), res.shape)
    score = float(res[py, px])
    if score < min_score or py in (0, res.shape[0] - 1) or px in (0, res.shape[1] - 1):
        return None
    second = res.copy()
    second[max(py - 3, 0):py + 4, max(px - 3, 0):px + 4] = -1.0
    if float(second.max()) > score - 0.1 * (1.0 - min_score) - 0.05:
        return None  # an ambiguous peak (repeated structure, or an edge)
    ox, oy, aniso = _subpixel(res, py, px)
    if aniso > max_anisotropy:
        return None
    mx, my = x0 + px + ox, y0 + py + oy
    if refine:
        mx, my = _refine_ecc(tpl, b, mx, my, min_score)
    return mx, my, score


def _refine_ecc(tpl: np.ndarray, b: np.ndarray, mx: float, my: float, min_score: float) -> tuple[float, float]:
    """ECC (translation) of the patch itself from top-left ``(mx, my)`` in ``b``: unbiased to a fraction of a pixel."""
    rows, cols = b.shape
    patch = tpl.shape[0]
    r0, c0 = max(int(round(my)) - 4, 0), max(int(round(mx)) - 4, 0)
    region = b[r0:min(r0 + patch + 8, rows), c0:min(c0 + patch + 8, cols)]
    if region.shape[0] >= patch and region.shape[1] >= patch:
        warp = np.array([[1, 0, mx - c0], [0, 1, my - r0]], dtype=np.float32)
        try:
            cc, warp = cv2.findTransformECC(tpl, region, warp, cv2.MOTION_TRANSLATION, _ECC_CRITERIA, None, 1)
            ex, ey = float(warp[0, 2]) + c0, float(warp[1, 2]) + r0
            if cc > min_score and abs(ex - mx) < 1.5 and abs(ey - my) < 1.5:
                return ex, ey
        except cv2.error:
            pass
    return mx, my


def dense_matches(a: np.ndarray, b: np.ndarray, valid_a: np.ndarray, valid_b: np.ndarray, shifts, *,
                  patch: int = 48, step: int = 24, search: int = 20, min_score: float = 0.35,
                  max_anisotropy: float = 12.0, refine: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patch-by-patch correspondences around the candidate displacements ``shifts``, each ``(dx, dy)``.

    Every patch is searched for around each candidate and keeps its best peak.
    Returns left centres ``(n, 2)``, right centres ``(n, 2)`` and the correlation peak of each.
    """
    rows, cols = a.shape
    half = patch // 2
    cover_a = ndimage.uniform_filter(valid_a.astype(np.float32), patch)
    cover_b = ndimage.uniform_filter(valid_b.astype(np.float32), patch)
    out_l, out_r, out_s = [], [], []
    for cy in range(half, rows - half + 1, step):
        check_cancelled()  # per row of patches: a cancel does not wait for the whole grid
        for cx in range(half, cols - half + 1, step):
            if cover_a[min(cy, rows - 1), min(cx, cols - 1)] < 0.97:
                continue
            tpl = a[cy - half:cy + half, cx - half:cx + half]
            if float(tpl.std()) < 1e-6:
                continue
            best = None
            for shift in shifts:
                found = _match_patch(tpl, b, cover_b, cx, cy, shift, search=search, min_score=min_score,
                                     max_anisotropy=max_anisotropy, refine=False)
                if found is not None and (best is None or found[2] > best[2]):
                    best = found
            if best is None:
                continue
            if refine:  # the best peak only: the others are dropped anyway
                best = (*_refine_ecc(tpl, b, best[0], best[1], min_score), best[2])
            # patch pixels [c - half, c + half) have their centre at c - 0.5
            out_l.append((cx - 0.5, cy - 0.5))
            out_r.append((best[0] + half - 0.5, best[1] + half - 0.5))
            out_s.append(best[2])
    return (np.array(out_l, dtype=float).reshape(-1, 2), np.array(out_r, dtype=float).reshape(-1, 2),
            np.array(out_s, dtype=float))


def _blobs(image: np.ndarray, valid: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel ``(x, y)`` of the strongest local extrema of a band-passed image, and their signs.

    The image is smoothed a little first, against noise.
    """
    from skimage.feature import peak_local_max

    away = erode(valid, 4)
    smooth = gaussian(image.astype(np.float64), 1.5)
    strength = float(np.std(smooth[valid])) if valid.any() else 0.0
    points, signs = [], []
    for sign in (1.0, -1.0):
        img = sign * smooth
        peaks = peak_local_max(img, min_distance=3, threshold_abs=2.0 * strength, labels=away.astype(np.uint8),
                               num_peaks=max_points // 2, exclude_border=2)
        if len(peaks) == 0:
            continue
        py, px = peaks[:, 0], peaks[:, 1]
        c = img[py, px]
        dx = 0.5 * (img[py, px - 1] - img[py, px + 1]) / np.minimum(img[py, px + 1] - 2 * c + img[py, px - 1], -1e-9)
        dy = 0.5 * (img[py - 1, px] - img[py + 1, px]) / np.minimum(img[py + 1, px] - 2 * c + img[py - 1, px], -1e-9)
        points.append(np.column_stack([px + np.clip(dx, -1, 1), py + np.clip(dy, -1, 1)]))
        signs.append(np.full(len(peaks), sign))
    if not points:
        return np.zeros((0, 2)), np.zeros(0)
    return np.vstack(points), np.concatenate(signs)


def _hough_line(vectors: np.ndarray, *, step_deg: float = 0.5, bin_px: float = 0.5) -> tuple[float, float, int]:
    """The straight line through most of the 2D ``vectors``: (angle of its direction in degrees, offset, votes)."""
    angles = np.deg2rad(np.arange(0.0, 180.0, step_deg))
    normals = np.column_stack([-np.sin(angles), np.cos(angles)])
    rho = normals @ vectors.T  # (n_angles, n)
    lo = float(rho.min())
    idx = np.floor((rho - lo) / bin_px).astype(np.int64)
    n_bins = int(idx.max()) + 1
    flat = (np.arange(len(angles))[:, None] * n_bins + idx).ravel()
    votes = np.bincount(flat, minlength=len(angles) * n_bins).reshape(len(angles), n_bins)
    votes = votes + np.roll(votes, 1, axis=1)  # a line on a bin edge counts in full
    k, j = np.unravel_index(int(np.argmax(votes)), votes.shape)
    return float(np.degrees(angles[k])), lo + j * bin_px, int(votes[k, j])


def _true_share(candidates: np.ndarray, theta_rad: float, t_perp: float, chosen: np.ndarray, band_px: float, *,
                bin_px: float = 4.0) -> np.ndarray:
    """Share of true pairs among the candidates on the line near each chosen pair's disparity.

    Blob pairs paired by chance scatter evenly over the search disc, so some fall
    on the line too, at any disparity within the search radius, where they weigh
    most on the direction. Their density is measured in bands parallel to the line
    but off it (only chance pairs there); along the line, disparities where the
    pairs on the line are not at least twice as dense as chance are not trusted.
    """
    u = np.array([np.cos(theta_rad), np.sin(theta_rad)])
    nrm = np.array([-u[1], u[0]])
    across = candidates @ nrm + t_perp
    along = candidates @ u
    on = np.abs(across) < band_px
    off_lo, off_hi = 3.0 * band_px, 3.0 * band_px + 8.0
    off = (np.abs(across) > off_lo) & (np.abs(across) < off_hi)
    lo, hi = float(along.min()) - bin_px, float(along.max()) + bin_px
    edges = np.arange(lo, hi + bin_px, bin_px)
    h_on = np.histogram(along[on], edges)[0].astype(float)
    h_off = np.histogram(along[off], edges)[0].astype(float)
    smooth = np.array([0.25, 0.5, 0.25])
    h_on = np.convolve(h_on, smooth, mode="same")
    chance = np.convolve(h_off, smooth, mode="same") * (2.0 * band_px) / (2.0 * (off_hi - off_lo))
    share = np.clip(1.0 - chance / np.maximum(h_on, 1e-9), 0.0, 1.0)
    idx = np.clip(np.searchsorted(edges, chosen @ u) - 1, 0, len(share) - 1)
    return share[idx]


def blob_matches(a: np.ndarray, b: np.ndarray, valid_a: np.ndarray, valid_b: np.ndarray, shifts, *,
                 radius: float, max_points: int = 800, threshold_px: float = 0.8,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blob pairs that agree with one tilt geometry (see the module notes); ``(left, right)`` ``(n, 2)`` each.

    All same-sign pairs within ``radius`` of a candidate shift vote in a Hough
    transform of the displacement lines; the pairs near the winning line are
    refined by :func:`~.fit.fit_epipolar`, and each blob is kept once.
    """
    from scipy.spatial import cKDTree

    from .fit import fit_epipolar

    pa, sa = _blobs(a, valid_a, max_points)
    pb, sb = _blobs(b, valid_b, max_points)
    if len(pa) < 10 or len(pb) < 10:
        return np.zeros((0, 2)), np.zeros((0, 2))
    tree = cKDTree(pb)
    best, best_votes = (np.zeros((0, 2)), np.zeros((0, 2))), 0
    for shift in shifts:
        check_cancelled()
        lists = tree.query_ball_point(pa + np.asarray(shift, float), r=radius)
        ia = np.repeat(np.arange(len(pa)), [len(x) for x in lists])
        ib = np.fromiter((j for x in lists for j in x), dtype=int, count=len(ia))
        same = sa[ia] == sb[ib]
        ia, ib = ia[same], ib[same]
        if len(ia) < 10:
            continue
        disp = pb[ib] - pa[ia]
        all_disp = disp
        angle, offset, votes = _hough_line(disp - np.asarray(shift, float))
        # chance: pairs fall on a 1 px wide strip across the search disc with probability 2 / (pi radius)
        chance = 2.0 * len(ia) / (np.pi * radius)
        if votes <= best_votes or votes < 2.0 * chance + 10:
            continue
        th = np.deg2rad(angle)
        near = np.abs((disp - np.asarray(shift, float)) @ np.array([-np.sin(th), np.cos(th)]) - offset) < 2.0
        if near.sum() < 10:
            continue
        ia, ib, disp = ia[near], ib[near], disp[near]
        fit = fit_epipolar(pa[ia], pb[ib], threshold_px=threshold_px, min_inliers=10, n_iter=1000, seed=seed)
        keep = fit.inliers
        if keep.sum() < 10:
            continue
        # each blob once: the pair closest to the line wins
        th = np.deg2rad(fit.theta_deg)
        resid = np.abs(disp @ np.array([-np.sin(th), np.cos(th)]) + fit.t_perp)
        used_a, used_b, chosen = set(), set(), []
        for k in np.argsort(np.where(keep, resid, np.inf)):
            if not keep[k]:
                break
            if ia[k] in used_a or ib[k] in used_b:
                continue
            used_a.add(ia[k])
            used_b.add(ib[k])
            chosen.append(k)
        chosen = np.asarray(chosen, dtype=int)
        true_share = _true_share(all_disp, th, fit.t_perp, disp[chosen], threshold_px)
        chosen = chosen[true_share >= 0.5]
        if len(chosen) < 10:
            continue
        best, best_votes = (pa[ia[chosen]], pb[ib[chosen]]), votes
    return best


def _to_uint8(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    vals = image[valid] if valid.any() else image.ravel()
    lo, hi = np.percentile(vals, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((image - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(out)


def sift_matches(a: np.ndarray, b: np.ndarray, valid_a: np.ndarray, valid_b: np.ndarray, *, ratio: float = 0.8,
                 max_keypoints: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """SIFT keypoint matches (Lowe's ratio test, cross-checked) on band-passed views, inside the masks."""
    sift = cv2.SIFT_create(nfeatures=int(max_keypoints))
    # keypoints keep away from mask edges: a frame's edge is at the same place in both views
    away_a, away_b = erode(valid_a, 8), erode(valid_b, 8)
    kp_a, des_a = sift.detectAndCompute(_to_uint8(a, valid_a), away_a.astype(np.uint8) * 255)
    check_cancelled()
    kp_b, des_b = sift.detectAndCompute(_to_uint8(b, valid_b), away_b.astype(np.uint8) * 255)
    if des_a is None or des_b is None or len(kp_a) < 2 or len(kp_b) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    check_cancelled()
    ia, ib = _ratio_cross_matches(des_a, des_b, ratio)
    pts_a = np.array([kp_a[i].pt for i in ia], dtype=float).reshape(-1, 2)
    pts_b = np.array([kp_b[j].pt for j in ib], dtype=float).reshape(-1, 2)
    return pts_a, pts_b


def _ratio_cross_matches(des_a: np.ndarray, des_b: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the descriptor pairs that pass Lowe's ratio test (a to b) and are mutual nearest neighbours.

    All squared distances at once, ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product, much faster than a
    brute-force matcher); the two nearest of each ``a`` are then measured again exactly for the ratio test.
    """
    a, b = np.asarray(des_a, np.float32), np.asarray(des_b, np.float32)
    if len(b) < 2:
        return np.zeros(0, int), np.zeros(0, int)
    d2 = a @ b.T
    d2 *= -2.0
    d2 += (a * a).sum(axis=1)[:, None]
    d2 += (b * b).sum(axis=1)[None, :]
    ia = np.arange(len(a))
    first = np.argmin(d2, axis=1)
    closest = d2[ia, first]
    column_min = d2.min(axis=0)
    mutual = closest <= column_min[first]  # each a's nearest b has no nearer a
    d2[ia, first] = np.inf
    two = np.column_stack([first, np.argmin(d2, axis=1)])
    exact = np.sqrt(((a[:, None, :].astype(np.float64) - b[two].astype(np.float64)) ** 2).sum(axis=2))
    order = np.argsort(exact, axis=1, kind="stable")
    nearest = np.take_along_axis(two, order, axis=1)
    dist = np.take_along_axis(exact, order, axis=1)
    good = (dist[:, 0] < ratio * dist[:, 1]) & mutual & (nearest[:, 0] == first)
    return ia[good], nearest[good, 0]


def find_correspondences(a: np.ndarray, b: np.ndarray, valid_a: np.ndarray, valid_b: np.ndarray, *,
                         methods=("dense", "blob", "sift"), patch: int | None = None, search: int | None = None,
                         n_shifts: int = 3) -> tuple[Correspondences, list]:
    """Correspondences between two band-passed views (see the module notes).

    Parameters
    ----------
    a, b : ndarray, float32, shape (rows, cols)
        Band-passed views (:func:`~.masks.bandpass`), left and right.
    valid_a, valid_b : ndarray of bool
        Usable pixels (not masked).
    methods : sequence of {"dense", "blob", "sift"}
    patch, search : int, optional
        Patch side and search radius (px) of the dense matching; default from the image size.
    n_shifts : int
        Candidate global shifts tried by the dense matching.

    Returns
    -------
    Correspondences
    shifts : list of (dx, dy)
        The candidate global shifts, strongest first.
    """
    size = min(a.shape)
    patch = int(patch or max(32, min(64, 2 * (size // 20))))
    search = int(search or max(12, size // 24))
    shifts = candidate_shifts(a, b, n_peaks=n_shifts)
    # the fine band noise can hide the global peak: also correlate the views smoothed to a coarser band
    for shift in candidate_shifts(gaussian(a, 3.0), gaussian(b, 3.0), n_peaks=2):
        if all(np.hypot(shift[0] - s[0], shift[1] - s[1]) > 4 for s in shifts):
            shifts.append(shift)
    found = Correspondences.empty()
    check_cancelled()
    if "dense" in methods:
        left, right, _ = dense_matches(a, b, valid_a, valid_b, shifts, patch=patch, step=patch // 3, search=search)
        found = found.concat(Correspondences(left, right, np.zeros(len(left), dtype=int)))
    check_cancelled()
    if "blob" in methods:
        left, right = blob_matches(a, b, valid_a, valid_b, shifts, radius=1.5 * search)
        found = found.concat(Correspondences(left, right, np.full(len(left), 4)))
    check_cancelled()
    if "sift" in methods:
        left, right = sift_matches(a, b, valid_a, valid_b)
        found = found.concat(Correspondences(left, right, np.ones(len(left), dtype=int)))
    return found, shifts

"""Background textures of TEM images: seed 001's Perlin model, bend contours, illumination, shot noise.

The Perlin model follows ``seeds/001`` section 3.1 (equations 1-6) with the
parameter ranges of its appendix table A.1:

=============== =========== ==================================================
name            range       meaning here
=============== =========== ==================================================
``O1``, ``O2``  10 .. 100   Perlin lattice periods across the image's longer
                            side (the ``octaves`` of the Perlin code the seed
                            used); wavelength ``lambda = size / O``; ``O1 <= O2``
                            so ``P1`` holds the longer wavelength
``w_perlin``    0.2 .. 0.4  weight ``w_P`` of ``P2`` (eq. 1)
``w_white``     0.5 .. 0.7  weight ``w_w1`` of the uniform white noise ``X1`` (eq. 3)
``s1``          1.0         sigma of the first Gaussian smoothing (eq. 4)
``r_noise``     0.2 .. 0.4  ``X2`` is weighted by ``r_noise * std(P4)`` (eq. 5)
``s2``          0.6 .. 0.8  sigma of the second Gaussian smoothing (eq. 6)
=============== =========== ==================================================

The result is clipped to ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..checks import InputError

__all__ = [
    "PERLIN_RANGES",
    "perlin_noise",
    "draw_perlin_params",
    "perlin_background",
    "bend_contours",
    "illumination",
    "shot_noise",
]

#: Appendix table A.1 of seed 001: (low, high) of each parameter.
PERLIN_RANGES: dict[str, tuple[float, float]] = {
    "O1": (10.0, 100.0),
    "O2": (10.0, 100.0),
    "w_perlin": (0.2, 0.4),
    "w_white": (0.5, 0.7),
    "s1": (1.0, 1.0),
    "r_noise": (0.2, 0.4),
    "s2": (0.6, 0.8),
}


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(shape: tuple[int, int], wavelength: float, rng: np.random.Generator) -> np.ndarray:
    """Two-dimensional gradient (Perlin) noise of one main wavelength.

    Parameters
    ----------
    shape : (rows, cols)
    wavelength : float
        Lattice spacing in pixels (the main wavelength).
    rng : numpy.random.Generator
        Source of the lattice gradients and of a random sub-cell offset.

    Returns
    -------
    ndarray, shape (rows, cols), float64
        Values roughly in ``[-0.7, 0.7]``, zero mean on average.
    """
    rows, cols = int(shape[0]), int(shape[1])
    wavelength = float(wavelength)
    if not wavelength > 0:
        raise InputError(f"Perlin wavelength must be positive, got {wavelength}")
    offset = rng.uniform(0.0, 1.0, size=2)
    y = np.arange(rows) / wavelength + offset[0]
    x = np.arange(cols) / wavelength + offset[1]
    gy_n, gx_n = int(np.floor(y[-1])) + 2, int(np.floor(x[-1])) + 2
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(gy_n, gx_n))
    grad_x, grad_y = np.cos(angle), np.sin(angle)
    y0 = np.floor(y).astype(np.intp)
    x0 = np.floor(x).astype(np.intp)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    iy, ix = y0[:, None], x0[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        return grad_x[iy + dy, ix + dx] * (fx - dx) + grad_y[iy + dy, ix + dx] * (fy - dy)

    u, v = _fade(fx), _fade(fy)
    top = corner(0, 0) + u * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + u * (corner(1, 1) - corner(1, 0))
    return top + v * (bottom - top)


def draw_perlin_params(rng: np.random.Generator) -> dict:
    """Draw the seed-001 background parameters uniformly from :data:`PERLIN_RANGES`."""
    params = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in PERLIN_RANGES.items()}
    if params["O1"] > params["O2"]:
        params["O1"], params["O2"] = params["O2"], params["O1"]
    return params


def perlin_background(shape: tuple[int, int], params: dict, rng: np.random.Generator, *,
                      size: float | None = None) -> np.ndarray:
    """The seed-001 background (equations 1-6, then clipping to ``[0, 1]``).

    Parameters
    ----------
    shape : (rows, cols)
        Shape of the texture (may be larger than the image, e.g. padded).
    params : dict
        ``O1, O2, w_perlin, w_white, s1, r_noise, s2`` (see :data:`PERLIN_RANGES`).
    rng : numpy.random.Generator
    size : float, optional
        Image size the ``O`` counts refer to (default: the longer side of ``shape``).

    Returns
    -------
    ndarray, shape (rows, cols), float64 in [0, 1]
    """
    size = float(max(shape) if size is None else size)
    p1 = perlin_noise(shape, size / params["O1"], rng)
    p2 = perlin_noise(shape, size / params["O2"], rng)
    p3 = p1 + params["w_perlin"] * p2                                            # eq. 1
    p3 = (p3 - p3.min()) / max(float(np.ptp(p3)), 1e-12)                         # eq. 2
    p4 = p3 + params["w_white"] * rng.uniform(-1.0, 1.0, size=shape)              # eq. 3
    p5 = ndimage.gaussian_filter(p4, params["s1"], mode="reflect")               # eq. 4
    w2 = params["r_noise"] * float(np.std(p4))
    p6 = p5 + w2 * rng.uniform(-1.0, 1.0, size=shape)                             # eq. 5
    p7 = ndimage.gaussian_filter(p6, params["s2"], mode="reflect")               # eq. 6
    return np.clip(p7, 0.0, 1.0)


def bend_contours(field: np.ndarray, levels, width: float, depth: float) -> np.ndarray:
    """Multiplicative dark bands where a smooth ``field`` crosses ``levels``.

    Bend contours are the loci of constant excitation error in a bent foil; they
    move with the tilt, so each view may shift ``levels`` a little.

    Parameters
    ----------
    field : ndarray, shape (rows, cols)
        A smooth field, e.g. long-wavelength Perlin noise scaled to ``[0, 1]``.
    levels : sequence of float
        Field values at the centre of each band.
    width : float
        Band half-width in field units.
    depth : float
        Darkening at a band's centre, ``0..1``.

    Returns
    -------
    ndarray, shape (rows, cols)
        Factor in ``[1 - depth, 1]``.
    """
    factor = np.ones_like(field)
    for level in levels:
        factor *= 1.0 - depth * np.exp(-0.5 * ((field - level) / width) ** 2)
    return factor


def illumination(shape: tuple[int, int], gradient: tuple[float, float]) -> np.ndarray:
    """A linear illumination ramp ``1 + gx (x - xc)/cols + gy (y - yc)/rows``, shape ``(rows, cols)``."""
    rows, cols = shape
    y = (np.arange(rows) - (rows - 1) / 2.0)[:, None] / rows
    x = (np.arange(cols) - (cols - 1) / 2.0)[None, :] / cols
    return 1.0 + gradient[0] * x + gradient[1] * y


def shot_noise(image: np.ndarray, dose: float | None, rng: np.random.Generator) -> np.ndarray:
    """Poisson shot noise for ``dose`` electrons per pixel at intensity 1 (``None``: no noise)."""
    if dose is None:
        return image
    dose = float(dose)
    if not dose > 0:
        raise InputError(f"dose must be a positive number of electrons per pixel, got {dose}")
    return rng.poisson(np.clip(image, 0.0, None) * dose) / dose

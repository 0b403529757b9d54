"""The four-view geometry of a segmented (or four-virtual-disc) detector.

DESIGN section 5: in view ``k`` a particle at ``(X, Y, Z)`` appears at::

    (x_k, y_k) = (X, Y) + Z sin(beta_k) (cos psi_k, sin psi_k)

with ``psi_k`` measured from ``+x`` towards ``+y``. ``Z = 0`` is the height at
which all views coincide. A segmented detector has one view angle for all views
(``beta`` a number); virtual discs of a 4D-STEM scan at different distances from
the direct beam have one each (``beta`` a sequence, one per view). A number is
turned into equal per-view values at the entry (:func:`check_view_geometry`,
:func:`view_shifts`), so both take the same code. This module is the only place
that writes this projection down; the simulator, the matcher and the tests all use it.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError, check_stereo_angle

__all__ = ["check_view_geometry", "view_directions", "view_shifts", "beta_record", "format_beta",
           "project_particles", "solve_positions"]

_BETA_TYPICAL = "1-6 degrees for a segmented detector"


def _check_betas(beta_deg, n: int) -> np.ndarray:
    """``beta`` per view: a number for all ``n`` views, or a sequence of ``n`` numbers."""
    if np.ndim(beta_deg) == 0:
        beta = check_stereo_angle(beta_deg, name="beta (the view angle)", limit_deg=45.0, typical=_BETA_TYPICAL)
        return np.full(n, beta)
    try:
        betas = np.asarray([float(b) for b in beta_deg], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"beta must be a number of degrees or one number per view, got {beta_deg!r}") from None
    if betas.size != n:
        raise InputError(f"{betas.size} view angles beta ({list(beta_deg)}) for {n} views; give one beta for all "
                         "views or one per view, in the order of the azimuths")
    for k, b in enumerate(betas):
        if not np.isfinite(b) or abs(b) >= 45.0:
            raise InputError(f"beta of view {k} is {beta_deg[k]!r}; each view angle must be finite and below "
                             f"45 degrees (typically {_BETA_TYPICAL})")
    if not np.any(betas):
        raise InputError(f"every view angle beta is zero ({list(beta_deg)}): no view sees the specimen from an "
                         "angle, so there is no depth")
    return betas


def check_view_geometry(beta_deg, azimuths_deg, *, n_views: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check the view angles ``beta_k`` and the azimuths ``psi_k``; return them as float arrays.

    Parameters
    ----------
    beta_deg : float or sequence of float
        One view angle for all views, or one per view (in the order of ``azimuths_deg``;
        one view may have 0: it looks straight down).
    azimuths_deg : sequence of float

    Returns
    -------
    betas, psi : ndarray, shape (n_views,)

    Raises
    ------
    InputError
        ``beta`` zero, non-finite or >= 45 degrees (per view: non-finite, >= 45 degrees,
        all zero, or not one per view); fewer than 3 azimuths, two views that shift the
        same way (a repeated azimuth at one beta; two views at one place), or a count
        that differs from ``n_views``.
    """
    scalar = np.ndim(beta_deg) == 0
    if scalar:
        _check_betas(beta_deg, 1)
    try:
        psi = np.asarray([float(a) for a in azimuths_deg], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"azimuths must be numbers of degrees, got {azimuths_deg!r}") from None
    if psi.size < 3 or not np.all(np.isfinite(psi)):
        raise InputError(f"at least 3 finite azimuths are needed (e.g. 0,90,180,270), got {list(azimuths_deg)}")
    betas = _check_betas(beta_deg, psi.size)
    # Two views whose shifts per unit height (nearly) coincide give no depth between them and
    # cannot be told apart: at one beta, azimuths less than 1 degree apart.
    shift = view_shifts(betas, psi) / np.max(np.abs(np.sin(np.deg2rad(betas))))
    dist = np.linalg.norm(shift[:, None] - shift[None, :], axis=2) + np.eye(psi.size) * 2.0
    if dist.min() < 2.0 * np.sin(np.deg2rad(0.5)):
        if np.all(betas == betas[0]):
            raise InputError(f"azimuths {list(azimuths_deg)} repeat a direction; each view needs its own azimuth")
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        raise InputError(f"views {i} and {j} shift the same way with height (beta {betas[i]:g} and {betas[j]:g} "
                         f"deg, azimuths {psi[i]:g} and {psi[j]:g} deg): two detectors at one place (or both at "
                         "the beam centre) see the same view; each view needs its own direction")
    if n_views is not None and psi.size != n_views:
        raise InputError(f"{n_views} views were given but {psi.size} azimuths ({list(azimuths_deg)}); "
                         "give one azimuth per view")
    return betas, psi


def view_directions(azimuths_deg) -> np.ndarray:
    """Unit shift directions ``(cos psi_k, sin psi_k)`` as an array of shape ``(n_views, 2)``."""
    psi = np.deg2rad(np.asarray(azimuths_deg, dtype=float))
    return np.column_stack([np.cos(psi), np.sin(psi)])


def view_shifts(beta_deg, azimuths_deg) -> np.ndarray:
    """Shift per unit height of every view, ``D_k = sin(beta_k) (cos psi_k, sin psi_k)``, shape ``(n_views, 2)``.

    ``beta_deg`` is one number for all views or one per view (not checked here; see
    :func:`check_view_geometry`).
    """
    directions = view_directions(azimuths_deg)
    betas = np.broadcast_to(np.asarray(beta_deg, dtype=float), (len(directions),))
    return np.sin(np.deg2rad(betas))[:, None] * directions


def beta_record(betas):
    """``beta`` as results record it: one float when every view has the same, else a list per view."""
    betas = np.atleast_1d(np.asarray(betas, dtype=float))
    return float(betas[0]) if np.all(betas == betas[0]) else [float(b) for b in betas]


def format_beta(beta_deg, fmt: str = ".3f") -> str:
    """``"beta 2.000 deg"`` or ``"beta 1.200, 1.500, 1.800, 2.000 deg"`` (one per view) for messages."""
    record = beta_record(beta_deg)
    values = record if isinstance(record, list) else [record]
    return "beta " + ", ".join(format(v, fmt) for v in values) + " deg"


def project_particles(points_xyz, *, beta_deg, azimuths_deg=(0, 90, 180, 270)) -> np.ndarray:
    """Image positions of 3D points in every view.

    Parameters
    ----------
    points_xyz : array_like, shape (n, 3)
        ``(x, y, z)`` in pixels.
    beta_deg : float or sequence of float
        View angle ``beta``, one for all views or one per view.
    azimuths_deg : sequence of float
        ``psi_k`` per view.

    Returns
    -------
    ndarray, shape (n_views, n, 2)
        ``(x, y)`` of every point in every view.
    """
    pts = np.asarray(points_xyz, dtype=float).reshape(-1, 3)
    shift = view_shifts(beta_deg, azimuths_deg)  # (k, 2)
    return pts[None, :, :2] + pts[None, :, 2:3] * shift[:, None, :]


def solve_positions(xy, *, beta_deg, azimuths_deg) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``(X, Y, Z)`` from the positions seen in several views.

    Parameters
    ----------
    xy : array_like, shape (n_views, n, 2)
        Detected ``(x, y)`` per view; NaN where a view did not see the particle
        (each particle needs at least two views that shift differently with height).
    beta_deg : float or sequence of float
        One view angle for all views or one per view.

    Returns
    -------
    points : ndarray, shape (n, 3)
        ``(X, Y, Z)`` in pixels.
    residual : ndarray, shape (n,)
        Root-mean-square distance (pixels) between the detections and the
        re-projected point, over the views that saw it.
    """
    xy = np.asarray(xy, dtype=float)
    u = view_shifts(beta_deg, azimuths_deg)  # (k, 2)
    seen = np.all(np.isfinite(xy), axis=2)  # (k, n)
    w = seen.astype(float)
    # Model per view: x = X + Z u_x, y = Y + Z u_y. Normal equations, one 3x3 per point.
    n_seen = w.sum(axis=0)
    su_x = w.T @ u[:, 0]
    su_y = w.T @ u[:, 1]
    suu = w.T @ (u[:, 0] ** 2 + u[:, 1] ** 2)
    obs = np.where(seen[..., None], xy, 0.0)
    bx = obs[..., 0].sum(axis=0)
    by = obs[..., 1].sum(axis=0)
    bz = (obs[..., 0] * u[:, 0:1] + obs[..., 1] * u[:, 1:2]).sum(axis=0)
    a = np.zeros((xy.shape[1], 3, 3))
    a[:, 0, 0] = n_seen
    a[:, 1, 1] = n_seen
    a[:, 0, 2] = a[:, 2, 0] = su_x
    a[:, 1, 2] = a[:, 2, 1] = su_y
    a[:, 2, 2] = suu
    b = np.stack([bx, by, bz], axis=1)
    points = np.linalg.solve(a, b[..., None])[..., 0] if len(b) else np.zeros((0, 3))
    pred = points[None, :, :2] + points[None, :, 2:3] * u[:, None, :]
    err = np.where(seen, np.sum((pred - np.where(seen[..., None], xy, 0.0)) ** 2, axis=2), 0.0)
    residual = np.sqrt(err.sum(axis=0) / np.maximum(n_seen, 1))
    return points, residual

"""The four-view geometry of a segmented (or four-virtual-disc) detector.

DESIGN section 5: in view ``k`` a particle at ``(X, Y, Z)`` appears at::

    (x_k, y_k) = (X, Y) + Z sin(beta) (cos psi_k, sin psi_k)

with ``psi_k`` measured from ``+x`` towards ``+y``. ``Z = 0`` is the height at
which all views coincide. This module is the only place that writes this
projection down; the simulator, the matcher and the tests all use it.
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError, check_stereo_angle

__all__ = ["check_view_geometry", "view_directions", "project_particles", "solve_positions"]


def check_view_geometry(beta_deg, azimuths_deg, *, n_views: int | None = None) -> tuple[float, np.ndarray]:
    """Check the view angle ``beta`` and the azimuths ``psi_k``; return them as floats.

    Raises
    ------
    InputError
        ``beta`` zero, non-finite or >= 45 degrees; fewer than 3 azimuths, repeated
        azimuths, or a count that differs from ``n_views``.
    """
    beta = check_stereo_angle(beta_deg, name="beta (the view angle)", limit_deg=45.0,
                              typical="1-6 degrees for a segmented detector")
    try:
        psi = np.asarray([float(a) for a in azimuths_deg], dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"azimuths must be numbers of degrees, got {azimuths_deg!r}") from None
    if psi.size < 3 or not np.all(np.isfinite(psi)):
        raise InputError(f"at least 3 finite azimuths are needed (e.g. 0,90,180,270), got {list(azimuths_deg)}")
    wrapped = np.mod(psi, 360.0)
    diffs = np.abs(wrapped[:, None] - wrapped[None, :])
    diffs = np.minimum(diffs, 360.0 - diffs) + np.eye(psi.size) * 360
    if diffs.min() < 1.0:
        raise InputError(f"azimuths {list(azimuths_deg)} repeat a direction; each view needs its own azimuth")
    if n_views is not None and psi.size != n_views:
        raise InputError(f"{n_views} views were given but {psi.size} azimuths ({list(azimuths_deg)}); "
                         "give one azimuth per view")
    return beta, psi


def view_directions(azimuths_deg) -> np.ndarray:
    """Unit shift directions ``(cos psi_k, sin psi_k)`` as an array of shape ``(n_views, 2)``."""
    psi = np.deg2rad(np.asarray(azimuths_deg, dtype=float))
    return np.column_stack([np.cos(psi), np.sin(psi)])


def project_particles(points_xyz, *, beta_deg: float, azimuths_deg=(0, 90, 180, 270)) -> np.ndarray:
    """Image positions of 3D points in every view.

    Parameters
    ----------
    points_xyz : array_like, shape (n, 3)
        ``(x, y, z)`` in pixels.
    beta_deg : float
        View angle ``beta``.
    azimuths_deg : sequence of float
        ``psi_k`` per view.

    Returns
    -------
    ndarray, shape (n_views, n, 2)
        ``(x, y)`` of every point in every view.
    """
    pts = np.asarray(points_xyz, dtype=float).reshape(-1, 3)
    shift = np.sin(np.deg2rad(beta_deg)) * view_directions(azimuths_deg)  # (k, 2)
    return pts[None, :, :2] + pts[None, :, 2:3] * shift[:, None, :]


def solve_positions(xy, *, beta_deg: float, azimuths_deg) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``(X, Y, Z)`` from the positions seen in several views.

    Parameters
    ----------
    xy : array_like, shape (n_views, n, 2)
        Detected ``(x, y)`` per view; NaN where a view did not see the particle
        (each particle needs at least two views with different azimuths).

    Returns
    -------
    points : ndarray, shape (n, 3)
        ``(X, Y, Z)`` in pixels.
    residual : ndarray, shape (n,)
        Root-mean-square distance (pixels) between the detections and the
        re-projected point, over the views that saw it.
    """
    xy = np.asarray(xy, dtype=float)
    s = np.sin(np.deg2rad(beta_deg))
    u = view_directions(azimuths_deg) * s  # (k, 2)
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

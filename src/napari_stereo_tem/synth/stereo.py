"""Synthetic stereo pairs with their complete truth, on disk and back.

A :class:`StereoSample` holds the two views, their masks, the signed disparity
``d = x_right - x_left`` at the dislocation pixels of each view, and the 3D
polylines. The truth of a dislocation pixel is the point of the true curve
whose projection is nearest to the pixel centre (its *foot*); the line is a
ribbon of constant depth across its width, so the disparity stored is that of
the point at the foot's depth that projects onto the pixel centre: triangulating
``(x, y, x + d)`` returns the foot's depth exactly (for a symmetric pair ``d``
is simply the foot's disparity).
Folder layout written by :meth:`StereoSample.save`::

    left.tif, right.tif                  float32 images in [0, 1]
    mask_left.tif, mask_right.tif        uint8: 0 background, 1 dislocation, 2 distractor
    disparity_left.tif, disparity_right.tif  float32, NaN off dislocation pixels
    lines_3d.csv                         line_id,x,y,z (pixels; z along the beam)
    params.json                          every parameter and the seed
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..checks import InputError, check_stereo_angle
from ..stereo.lines_io import write_lines_csv
from ..stereo.projection import project_points
from .render import render_views
from .scene import make_scene
from .seeds import check_seed

__all__ = ["StereoSample", "make_stereo_pair", "load_stereo_sample", "GENERATOR_VERSION"]

#: Bumped whenever the same seed would give different data.
GENERATOR_VERSION = "1"

_FILES = ("left", "right", "mask_left", "mask_right", "disparity_left", "disparity_right")


@dataclass
class StereoSample:
    """A synthetic stereo pair and its truth (see the module docstring for the meaning of each field)."""

    left: np.ndarray
    right: np.ndarray
    mask_left: np.ndarray
    mask_right: np.ndarray
    disparity_left: np.ndarray
    disparity_right: np.ndarray
    lines_3d: list = field(default_factory=list)
    stereo_angle_deg: float = 8.0
    tilts_deg: tuple = (-4.0, 4.0)
    axis_col: float = 0.0
    params: dict = field(default_factory=dict)

    def save(self, directory) -> Path:
        """Write the sample into ``directory`` (created if needed); each file is written atomically."""
        import tifffile

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name in _FILES:
            atomic_write(folder / f"{name}.tif", lambda f, a=getattr(self, name): tifffile.imwrite(f, a))
        write_lines_csv(folder / "lines_3d.csv", self.lines_3d, decimals=6)
        blob = json.dumps(self.params, indent=1, sort_keys=True, allow_nan=False)
        atomic_write_text(folder / "params.json", blob)
        return folder


def load_stereo_sample(directory) -> StereoSample:
    """Read a folder written by :meth:`StereoSample.save`."""
    import tifffile

    folder = Path(directory)
    missing = [n for n in (*[f"{n}.tif" for n in _FILES], "lines_3d.csv", "params.json") if not (folder / n).exists()]
    if missing:
        raise InputError(f"{folder} is not a synthetic stereo sample: missing {', '.join(missing)}")
    arrays = {name: tifffile.imread(folder / f"{name}.tif") for name in _FILES}
    params = json.loads((folder / "params.json").read_text())
    table = np.loadtxt(folder / "lines_3d.csv", delimiter=",", skiprows=1, ndmin=2)
    lines = [table[table[:, 0] == k, 1:] for k in np.unique(table[:, 0]).astype(int)] if len(table) else []
    return StereoSample(**arrays, lines_3d=lines, stereo_angle_deg=float(params["stereo_angle_deg"]),
                        tilts_deg=tuple(params["tilts_deg"]), axis_col=float(params["axis_col"]), params=params)


def _visible_runs(line: np.ndarray, tilts, axis_col, shape, margin: float = 4.0) -> list:
    """Pieces of ``line`` that project inside the image (grown by ``margin`` px) in at least one view."""
    rows, cols = shape
    inside = np.zeros(len(line), bool)
    for tilt in tilts:
        xy = project_points(line, tilt, axis_col=axis_col)
        inside |= ((xy[:, 0] >= -margin) & (xy[:, 0] <= cols - 1 + margin)
                   & (xy[:, 1] >= -margin) & (xy[:, 1] <= rows - 1 + margin))
    edges = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [line[a:b] for a, b in zip(starts, stops) if b - a >= 2]


def make_stereo_pair(seed: int, *, shape=(512, 512), stereo_angle_deg: float = 8.0, tilts_deg=None,
                     dark_field: bool = False, background="perlin", dose: float | None = None,
                     n_groups: int | None = None, distractors: bool = True, loops: bool = False,
                     foil_thickness: float | None = None, max_pileup: int = 8,
                     view_jitter: float = 0.15) -> StereoSample:
    """Generate a synthetic stereo pair with all of its truth.

    Parameters
    ----------
    seed : int
        Everything follows from it (see :mod:`.seeds` for the split ranges).
    shape : (rows, cols)
    stereo_angle_deg : float
        ``phi``; the views are at ``-phi/2`` and ``+phi/2`` unless ``tilts_deg`` is given.
    tilts_deg : (float, float), optional
        Explicit (left, right) tilts, e.g. asymmetric; then ``phi = right - left``.
    dark_field : bool
        Bright lines on a dark background.
    background : {"perlin", "plain"} or ndarray
        See :func:`~.scene.make_scene`.
    dose : float, optional
        Electrons per pixel at intensity 1 for Poisson noise. ``None`` draws it
        log-uniformly in 100..5000; ``0`` or ``inf`` means no noise.
    n_groups, distractors, loops, foil_thickness, max_pileup
        Scene options, see :func:`~.scene.make_scene`.
    view_jitter : float
        Relative difference of line contrast between the two views.

    Returns
    -------
    StereoSample
        ``left``/``right`` float32 ``(rows, cols)`` in [0, 1]; masks uint8;
        disparities float32 with NaN off dislocation pixels; ``lines_3d`` the
        3D polylines, clipped to the parts that project inside the image
        (grown by 4 px) in at least one view, so every dislocation pixel's
        3D point is on them.
    """
    seed = check_seed(seed)
    if tilts_deg is None:
        phi = check_stereo_angle(stereo_angle_deg)
        tilts = (-phi / 2.0, phi / 2.0)
    else:
        tilts = tuple(float(v) for v in tilts_deg)
        if len(tilts) != 2:
            raise InputError(f"tilts_deg must be (left, right), got {tilts_deg}")
        phi = check_stereo_angle(tilts[1] - tilts[0], name="tilts_deg[1] - tilts_deg[0]")
    rng = np.random.default_rng([int(seed), 3])
    if dose is None:
        dose = float(np.exp(rng.uniform(np.log(100.0), np.log(5000.0))))
    elif float(dose) <= 0 or math.isinf(float(dose)):
        dose = None
    scene = make_scene(seed, shape=shape, foil_thickness=foil_thickness, n_groups=n_groups, loops=loops,
                       distractors=distractors, background=background, max_pileup=max_pileup,
                       max_tilt_deg=max(10.0, max(abs(v) for v in tilts)))
    rows, cols = scene.shape
    axis_col = (cols - 1) / 2.0
    views = render_views(scene, tilts, axis_col=axis_col, dark_field=dark_field, dose=dose, seed=seed,
                         view_jitter=view_jitter)
    disparities = []
    for foot, tilt in zip(views.foot_points, tilts):
        # The pixel shows the point at its foot's depth whose projection is the pixel centre
        # (the line is a ribbon of constant depth across its width); in a symmetric pair
        # this is the foot's own disparity.
        d = np.full((rows, cols), np.nan, np.float32)
        yy, xx = np.nonzero(np.isfinite(foot[..., 0]))
        z = foot[yy, xx, 2]
        a = np.deg2rad(tilt)
        x3 = axis_col + (xx - axis_col - z * np.sin(a)) / np.cos(a)
        pts = np.column_stack([x3, yy, z])
        d[yy, xx] = project_points(pts, tilts[1], axis_col=axis_col)[:, 0] - project_points(
            pts, tilts[0], axis_col=axis_col)[:, 0]
        disparities.append(d)
    lines = [run for line in scene.lines for run in _visible_runs(line, tilts, axis_col, (rows, cols))]
    params = {"generator": "napari_stereo_tem.synth.make_stereo_pair", "generator_version": GENERATOR_VERSION,
              "seed": int(seed), "stereo_angle_deg": float(phi), "tilts_deg": list(tilts), "axis_col": axis_col,
              "scene": scene.params, "render": views.params}
    return StereoSample(left=views.images[0], right=views.images[1], mask_left=views.masks[0],
                        mask_right=views.masks[1], disparity_left=disparities[0], disparity_right=disparities[1],
                        lines_3d=lines, stereo_angle_deg=float(phi), tilts_deg=tilts, axis_col=axis_col,
                        params=params)

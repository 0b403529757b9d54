"""Score a directory of cases against their truth (the ``stereo-tem evaluate`` command).

A **case** is a folder with truth, in the layout the generators write:

- stereo (:meth:`~napari_stereo_tem.synth.StereoSample.save`): ``left.tif``,
  ``right.tif`` and any of ``mask_left.tif`` (1 = dislocation, 2 = distractor; a 0/255
  mask also works), ``mask_right.tif``,
  ``disparity_left.tif`` (NaN off lines), ``lines_3d.csv``, ``params.json``
  (``stereo_angle_deg``, ``tilts_deg``, ``axis_col``). A user's labelled pair in
  that layout works too; the figures whose truth is missing are left blank.
- particles (:meth:`~napari_stereo_tem.synth.particles.ParticleSample.save`):
  ``view_A.tif`` ..., ``truth.csv`` (``x,y,z,radius``), ``params.json``
  (``beta_deg``, ``azimuths_deg``).

Predictions of a case are read from a folder (``<case>/pred``, else
``<directory>/predictions/<case name>`` where ``run`` writes, or
``PREDICTIONS/<case name>``): ``lines.csv`` as ``stereo-tem reconstruct`` writes
it (optionally ``labels_left.tif``, ``disparity_raw.tif``, ``disparity_left.tif``),
or ``points.csv`` as ``stereo-tem particles`` writes it. With ``run=True`` the
pipeline runs on the case and its outputs are written (and scored) there.

Figures (existing metric functions, not re-implemented): segmentation precision,
recall, F1 (2 px) and clDice (:mod:`napari_stereo_tem.evaluation.metrics`); disparity EPE
and > 1/3/5 px (:func:`napari_stereo_tem.stereo.matching.disparity_metrics`); 3D line
distance and depth error (:func:`.lines3d.line_set_distance`); re-projection error
into an unseen tilt (:func:`napari_stereo_tem.stereo.reprojection.reprojection_error`);
particle recall, precision, 3D error (:func:`napari_stereo_tem.particles.evaluation.score_particles`);
g(r) against the truth's (:func:`napari_stereo_tem.particles.rdf.radial_distribution`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import check_output_folder
from ..checks import InputError
from ..progress import Progress, ProgressGenerator, drive
from .lines3d import line_set_distance

__all__ = ["find_cases", "score_stereo_case", "score_particle_case", "evaluate_directory_iter",
           "evaluate_directory", "KINDS"]

KINDS = ("stereo", "particles")


def _kind_of(folder: Path) -> str | None:
    if (folder / "left.tif").is_file() and (folder / "right.tif").is_file():
        return "stereo"
    if (folder / "view_A.tif").is_file() and (folder / "truth.csv").is_file():
        return "particles"
    return None


def find_cases(directory, *, kind: str | None = None) -> list[tuple[str, Path, str]]:
    """The cases in ``directory`` (itself, or its sub-folders, sorted): ``(name, folder, kind)``."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder that holds the cases")
    if kind is not None and kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
    found = [(root.name, root, _kind_of(root))] if _kind_of(root) else [
        (p.name, p, _kind_of(p)) for p in sorted(root.iterdir()) if p.is_dir() and _kind_of(p)]
    if kind is not None:
        found = [c for c in found if c[2] == kind]
    if not found:
        raise InputError(f"no {kind or 'stereo or particle'} cases in {root}: a case is a folder with left.tif and "
                         f"right.tif (stereo) or view_A.tif and truth.csv (particles); see `stereo-tem synth`")
    return found


def _tif(path: Path):
    import tifffile

    return tifffile.imread(path) if path.is_file() else None


def _line_mask(mask: np.ndarray) -> np.ndarray:
    """Dislocation pixels of a truth mask: class 1 of the generator's labels, or any non-zero of a 0/255 mask."""
    return mask == 1 if mask.max(initial=0) <= 2 else mask > 0


def _params(folder: Path) -> dict:
    path = folder / "params.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _stereo_geometry(folder: Path, shape, angle) -> tuple[float, tuple, float]:
    params = _params(folder)
    phi = float(angle) if angle is not None else params.get("stereo_angle_deg")
    if phi is None:
        raise InputError(f"{folder}: no stereo angle (params.json lacks stereo_angle_deg); give --angle DEG")
    tilts = tuple(params.get("tilts_deg", (-phi / 2, phi / 2))) if angle is None else (-phi / 2, phi / 2)
    return float(phi), tilts, float(params.get("axis_col", (shape[1] - 1) / 2.0))


def _run_stereo(folder: Path, out: Path, phi: float, options: dict) -> None:
    import tifffile

    from ..stereo.pipeline import reconstruct

    rec = reconstruct(str(folder / "left.tif"), str(folder / "right.tif"), stereo_angle_deg=phi,
                      rectify=options.get("rectify", False), device=options.get("device", "cpu"),
                      detector=options.get("detector"), matcher=options.get("matcher"),
                      n_threads=options.get("n_threads"))
    extra = {"labels_left.tif": lambda p: tifffile.imwrite(p, rec.labels_left.astype(np.uint8)),
             "disparity_raw.tif": lambda p: tifffile.imwrite(p, rec.disparity.astype(np.float32)),
             "disparity_left.tif": lambda p: tifffile.imwrite(p, rec.disparity_refined.astype(np.float32))}
    rec.save(out, overwrite=options.get("overwrite", False), extra=extra)


def _raster_lines(lines_2d, shape) -> np.ndarray:
    import cv2

    canvas = np.zeros(shape, np.uint8)
    for line in lines_2d:
        if len(line) >= 2:
            cv2.polylines(canvas, [np.round(line).astype(np.int32).reshape(-1, 1, 2)], False, 1, thickness=2)
        elif len(line) == 1:
            x, y = np.round(line[0]).astype(int)
            if 0 <= y < shape[0] and 0 <= x < shape[1]:
                canvas[y, x] = 1
    return canvas > 0


def _lines_disparity(lines, tilts, axis_col, shape) -> np.ndarray:
    """Disparity map implied by 3D lines: at each left pixel a line projects onto, ``x_right - x_left``."""
    from ..stereo.projection import project_points

    out = np.full(shape, np.nan, np.float32)
    for line in lines:
        xl = project_points(line, tilts[0], axis_col=axis_col)
        xr = project_points(line, tilts[1], axis_col=axis_col)
        col, row = np.round(xl[:, 0]).astype(int), np.round(xl[:, 1]).astype(int)
        ok = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
        out[row[ok], col[ok]] = xr[ok, 0] - xl[ok, 0]
    return out


def score_stereo_case(folder, pred_dir, *, angle: float | None = None, tolerance: float = 2.0,
                      reproject_tilt: float = 30.0, remove_depth_offset: bool = True) -> dict:
    """Figures of one stereo case whose predictions lie in ``pred_dir`` (see the module docstring).

    Returns
    -------
    dict
        ``angle_deg``, ``seg_precision``, ``seg_recall``, ``seg_f1``, ``cldice``, ``epe``, ``gt1``,
        ``gt3``, ``gt5``, ``disp_coverage``, ``epe_refined``, ``coverage_refined``, ``line_mean_px``,
        ``line_median_px``, ``depth_err_px``, ``depth_offset_px``, ``reproj_err_px``, ``n_lines``,
        ``seg_source`` / ``disp_source`` (where the predicted mask and disparity came from).
        Figures without truth are absent.
    """
    from ..stereo.lines_io import read_lines_csv
    from ..stereo.matching import disparity_metrics
    from .metrics import centreline_scores, cl_dice
    from ..stereo.projection import project_points
    from ..stereo.reprojection import reprojection_error

    folder, pred_dir = Path(folder), Path(pred_dir)
    if not (pred_dir / "lines.csv").is_file():
        raise InputError(f"no predictions for {folder.name}: {pred_dir / 'lines.csv'} is missing; run "
                         f"`stereo-tem reconstruct ... -o {pred_dir}` or evaluate with --run")
    lines = read_lines_csv(pred_dir / "lines.csv")
    left = _tif(folder / "left.tif")
    shape = left.shape
    phi, tilts, axis_col = _stereo_geometry(folder, shape, angle)
    row: dict = {"angle_deg": phi, "n_lines": len(lines)}
    mask = _tif(folder / "mask_left.tif")
    truth_d = _tif(folder / "disparity_left.tif")
    truth_3d = read_lines_csv(folder / "lines_3d.csv") if (folder / "lines_3d.csv").is_file() else None

    labels = _tif(pred_dir / "labels_left.tif")
    if mask is not None:
        true_mask = _line_mask(mask)
        if labels is not None:
            pred_mask, row["seg_source"] = labels == 1, "labels_left.tif"
        else:
            proj = [project_points(line, tilts[0], axis_col=axis_col) for line in lines]
            pred_mask, row["seg_source"] = _raster_lines(proj, shape), "lines.csv projected"
        s = centreline_scores(pred_mask, true_mask, tolerance=tolerance)
        row.update(seg_precision=s["precision"], seg_recall=s["recall"], seg_f1=s["f1"],
                   cldice=cl_dice(pred_mask, true_mask))
    if truth_d is not None:
        score_mask = _line_mask(mask) if mask is not None else None
        raw, refined = _tif(pred_dir / "disparity_raw.tif"), _tif(pred_dir / "disparity_left.tif")
        if raw is None and refined is None:
            raw, row["disp_source"] = _lines_disparity(lines, tilts, axis_col, shape), "lines.csv projected"
        elif raw is None:
            raw, row["disp_source"] = refined, "disparity_left.tif"
        else:
            row["disp_source"] = "disparity_raw.tif"
        d = disparity_metrics(raw, truth_d, score_mask)
        row.update(epe=d["epe"], gt1=d["gt1"], gt3=d["gt3"], gt5=d["gt5"], disp_coverage=d["coverage"])
        if refined is not None and raw is not refined:
            r = disparity_metrics(refined, truth_d, score_mask)
            row.update(epe_refined=r["epe"], coverage_refined=r["coverage"])
    offset = 0.0
    if truth_3d:
        m = line_set_distance(lines, truth_3d, remove_depth_offset=remove_depth_offset)
        offset = m["depth_offset"]
        row.update(line_mean_px=m["mean"], line_median_px=m["median"], depth_err_px=m["depth_mean"],
                   depth_offset_px=offset)
    if lines and sum(len(v) for v in lines):
        shifted = [np.asarray(v) + [0.0, 0.0, offset] for v in lines]
        if truth_3d:
            row["reproj_err_px"] = reprojection_error(shifted, reproject_tilt, truth_3d, axis_col=axis_col)["mean"]
            row["reproj_view"] = f"{reproject_tilt:g} deg (truth lines)"
        elif (folder / "mask_right.tif").is_file():
            mask_r = _line_mask(_tif(folder / "mask_right.tif"))
            if mask_r.any():
                row["reproj_err_px"] = reprojection_error(shifted, tilts[1], mask_r, axis_col=axis_col)["mean"]
                row["reproj_view"] = "right view mask"
    return row


def _run_particles(folder: Path, out: Path, params: dict, *, overwrite: bool = False) -> None:
    from ..particles.pipeline import reconstruct_particles, write_particle_result

    views = sorted(folder.glob("view_*.tif"))
    result = reconstruct_particles([str(p) for p in views], beta_deg=params["beta_deg"],
                                   azimuths_deg=tuple(params["azimuths_deg"]))
    write_particle_result(result, out, plot=False, overwrite=overwrite)


def score_particle_case(folder, pred_dir, *, tolerance: float = 3.0, margin: float = 6.0,
                        n_bins: int = 40) -> dict:
    """Figures of one particle case whose ``points.csv`` lies in ``pred_dir``.

    Returns
    -------
    dict
        ``recall``, ``precision``, ``rmse_3d_px``, ``rmse_z_px``, ``n_true``, ``n_found``, and
        ``g_rmse`` (root-mean-square difference of g(r) to the truth's, same bins, up to
        8 median true radii), ``g_peak_true_px``, ``g_peak_pred_px``.
    """
    from ..particles.evaluation import score_particles
    from ..particles.points_csv import POINT_COLUMNS, read_points_csv
    from ..particles.rdf import first_peak, radial_distribution

    folder, pred_dir = Path(folder), Path(pred_dir)
    if not (pred_dir / "points.csv").is_file():
        raise InputError(f"no predictions for {folder.name}: {pred_dir / 'points.csv'} is missing; run "
                         f"`stereo-tem particles ... -o {pred_dir}` or evaluate with --run")
    params = _params(folder)
    # the first four columns (x, y, z, radius) of each table, whatever columns follow
    truth, pred = (np.column_stack([table[c] for c in POINT_COLUMNS])
                   for table in (read_points_csv(folder / "truth.csv"), read_points_csv(pred_dir / "points.csv")))
    shape = _tif(folder / "view_A.tif").shape
    s = score_particles(pred[:, :3], truth[:, :3], tolerance=tolerance, shape=shape,
                        beta_deg=params.get("beta_deg"), azimuths_deg=tuple(params.get("azimuths_deg", (0, 90, 180, 270))),
                        margin=margin)
    row = {"recall": s["recall"], "precision": s["precision"], "rmse_3d_px": s["rmse_3d"], "rmse_z_px": s["rmse_z"],
           "n_true": s["n_true"], "n_found": s["n_found"]}
    if len(pred) >= 2 and len(truth) >= 2:
        r_max = 8.0 * float(np.median(truth[:, 3]))

        def gr(points):
            z = points[:, 2]
            box = np.array([[0, shape[1]], [0, shape[0]], [z.min(), z.max() + 1e-9]])
            return radial_distribution(points[:, :3], r_max=r_max, n_bins=n_bins, box=box)

        r, g_true = gr(truth)
        _, g_pred = gr(pred)
        row.update(g_rmse=float(np.sqrt(np.mean((g_pred - g_true) ** 2))),
                   g_peak_true_px=first_peak(r, g_true), g_peak_pred_px=first_peak(r, g_pred))
    return row


def evaluate_directory_iter(directory, *, kind: str | None = None, predictions=None, run: bool = False,
                            run_dir=None, angle: float | None = None, tolerance: float = 2.0,
                            reproject_tilt: float = 30.0, remove_depth_offset: bool = True,
                            **run_options) -> ProgressGenerator[list]:
    """Score every case of ``directory``; a progress generator returning the rows (one dict per case).

    Parameters
    ----------
    directory : str or Path
        A case, or a folder of cases (see the module docstring).
    kind : {"stereo", "particles"}, optional
        Only cases of this kind.
    predictions : str or Path, optional
        Folder with one sub-folder of predictions per case name; default ``<case>/pred``.
    run : bool
        Run the pipeline on each case first (predictions written to ``run_dir/<case>``).
    run_dir : str or Path, optional
        Where ``run`` writes; default the ``predictions`` folder, else ``<directory>/predictions``.
    angle : float, optional
        Stereo angle for cases whose ``params.json`` lacks it.
    tolerance : float
        Segmentation tolerance, pixels.
    reproject_tilt : float
        Unseen tilt (degrees) of the re-projection error.
    remove_depth_offset : bool
        Remove the global depth offset before the 3D figures (the stereo depth origin is free).
    **run_options
        For ``run``: ``device``, ``detector``, ``matcher``, ``n_threads``, ``rectify`` (default False:
        generated pairs are rectified), ``overwrite`` (default False: a case whose prediction folder
        already holds files is refused before any work; True replaces it as a whole).

    Yields
    ------
    Progress
        One per case.

    Returns
    -------
    list of dict
        ``case``, ``kind``, then the figures of :func:`score_stereo_case` / :func:`score_particle_case`
        (``error`` instead when a case could not be scored).
    """
    cases = find_cases(directory, kind=kind)
    root = Path(directory)
    if run:
        run_root = Path(run_dir) if run_dir is not None else (Path(predictions) if predictions else root / "predictions")
        overwrite = bool(run_options.get("overwrite", False))
        for name, _, _ in cases:  # before any work: an earlier run is replaced only when asked
            check_output_folder(run_root / name, overwrite=overwrite, option="--predictions")
    rows = []
    for k, (name, folder, case_kind) in enumerate(cases):
        yield Progress(k, len(cases), "evaluate", {"case": name})
        if run:
            pred_dir = run_root / name
            if case_kind == "stereo":
                phi, _, _ = _stereo_geometry(folder, _tif(folder / "left.tif").shape, angle)
                _run_stereo(folder, pred_dir, phi, run_options)
            else:
                _run_particles(folder, pred_dir, _params(folder), overwrite=overwrite)
        else:
            pred_dir = Path(predictions) / name if predictions else folder / "pred"
            if not predictions and not pred_dir.is_dir() and (root / "predictions" / name).is_dir():
                pred_dir = root / "predictions" / name  # where an earlier --run wrote them
        row = {"case": name, "kind": case_kind}
        try:
            if case_kind == "stereo":
                row.update(score_stereo_case(folder, pred_dir, angle=angle, tolerance=tolerance,
                                             reproject_tilt=reproject_tilt, remove_depth_offset=remove_depth_offset))
            else:
                row.update(score_particle_case(folder, pred_dir))
        except InputError as err:
            row["error"] = str(err)
        rows.append(row)
    yield Progress(len(cases), len(cases), "evaluate")
    return rows


def evaluate_directory(directory, *, on_progress=None, should_stop=None, **options) -> list:
    """Run :func:`evaluate_directory_iter` to the end (same options); returns the rows."""
    return drive(evaluate_directory_iter(directory, **options), on_progress, should_stop)

"""Every pass on the chosen executor, sub-pixel descan in the one pass, the beam check, the one stereo-pair path."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.fourdstem import (
    beam_centres,
    calibrate,
    compose_stereo_pair,
    fit_direct_beam,
    find_direct_beam,
    iter_virtual_images,
    iter_virtual_stereo_pair,
    mean_pattern,
    open_4dstem,
    pair_geometry,
    virtual_images,
)
from napari_stereo_tem.fourdstem.masks import disc_mask
from napari_stereo_tem.fourdstem.virtual import reduce_block_shifted
from napari_stereo_tem.progress import Cancelled, drive

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_stereo_tem" / "fourdstem"


def _beam_data(shifts=None, *, scan=(6, 7), det=(40, 40), centre=(19.3, 20.6), r=7.0, seed=0):
    """Patterns with a bright disc (soft edge) moved by ``shifts`` ``(scan_y, scan_x, 2)``, plus structure."""
    rng = np.random.default_rng(seed)
    sy, sx = scan
    ky, kx = np.mgrid[:det[0], :det[1]]
    data = np.empty((sy, sx, *det), np.float32)
    for y in range(sy):
        for x in range(sx):
            dy, dx = (0.0, 0.0) if shifts is None else shifts[y, x]
            d = np.hypot(ky - centre[0] - dy, kx - centre[1] - dx)
            texture = 1.0 + 0.3 * np.sin(0.7 * (ky - dy)) * np.cos(0.5 * (kx - dx)) * (1 + 0.1 * y - 0.05 * x)
            data[y, x] = 100.0 * np.clip(r + 0.5 - d, 0, 1) * texture + 2.0
    return data + rng.uniform(0, 0.01, data.shape).astype(np.float32)


# -- executors ---------------------------------------------------------------------------------------------
def test_mean_max_centres_and_images_agree_across_executors(tmp_path):
    from distributed import Client, LocalCluster

    data = _beam_data()
    np.save(tmp_path / "d.npy", data)
    discs = [(19, 17, 3), (19, 24, 3)]
    results = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for name, executor in (("inline", "inline"), ("threads", "threads"), ("cluster", client),
                               ("address", cluster.scheduler_address)):
            ds = open_4dstem(tmp_path / "d.npy")
            mean = mean_pattern(ds, executor=executor)
            centres = beam_centres(ds, direct=(19.3, 20.6, 7.0), executor=executor)
            images = virtual_images(ds, discs, executor=executor, rows_per_task=2)
            moved = virtual_images(ds, discs, executor=executor, rows_per_task=2, descan=centres)
            results[name] = (mean, centres, images, moved)
    np.testing.assert_allclose(results["inline"][0], data.mean(axis=(0, 1)), rtol=1e-6)
    for name in ("threads", "cluster", "address"):
        for a, b in zip(results[name], results["inline"]):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_partial_images_arrive_band_by_band():
    data = _beam_data()
    images = np.zeros((1, 6, 7), np.float32)
    gen = iter_virtual_images(data, [(19, 20, 4)], rows_per_task=2, out=images)
    filled = []
    try:
        while True:
            report = next(gen)
            done = int(np.sum(np.all(images[0] > 0, axis=1)))
            filled.append(done)
            assert np.all(images[0, done:] == 0)  # inline: later bands not yet computed
    except StopIteration as stop:
        final = stop.value
    assert filled == [2, 4, 6] and final is images
    np.testing.assert_allclose(final, virtual_images(data, [(19, 20, 4)]))
    with pytest.raises(InputError, match="out must be"):
        drive(iter_virtual_images(data, [(19, 20, 4)], out=np.zeros((2, 6, 7), np.float32)))


def test_cancel_on_threads_stops_the_pass():
    data = _beam_data(scan=(24, 7))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        virtual_images(data, [(19, 20, 4)], executor="threads", rows_per_task=1, should_stop=stop)


# -- sub-pixel descan inside the pass ----------------------------------------------------------------------
def test_subpixel_descan_gives_the_images_of_the_unshifted_beam():
    sy, sx = 6, 7
    yy, xx = np.mgrid[:sy, :sx]
    shifts = np.stack([0.35 * yy - 0.9, -0.27 * xx + 0.6], axis=-1)  # a descan ramp, sub-pixel, up to ~1.5 px
    moving = _beam_data(shifts)
    still = _beam_data()
    discs = [(19.3, 17.6, 4.5), (19.3, 23.6, 4.5), (19.3, 20.6, 6.0)]
    truth = virtual_images(still, discs)
    centres = beam_centres(moving, direct=(19.3, 20.6, 7.0))
    measured = np.asarray(centres) - np.array([19.3, 20.6])
    assert np.abs(measured - shifts).max() < 0.3  # the centres follow the beam (centre of mass, textured disc)
    plain = virtual_images(moving, discs)
    fixed = virtual_images(moving, discs, descan=np.array([19.3, 20.6]) + shifts, descan_reference=(19.3, 20.6))
    err_plain = np.abs(plain - truth).max() / truth.max()
    err_fixed = np.abs(fixed - truth).max() / truth.max()
    assert err_fixed < 0.02 and err_fixed < err_plain / 5, (err_fixed, err_plain)


def test_descan_with_whole_pixel_shifts_is_exact():
    shifts = np.zeros((6, 7, 2))
    shifts[..., 0] = np.arange(7) % 3 - 1
    data = _beam_data(shifts)
    still = _beam_data()
    discs = [(19.0, 18.0, 4.0)]
    fixed = virtual_images(data, discs, descan=np.array([19.3, 20.6]) + shifts, descan_reference=(19.3, 20.6))
    np.testing.assert_allclose(fixed, virtual_images(still, discs), rtol=2e-3)


def test_descan_in_bands_equals_the_whole_block_near_the_detector_edge():
    """Bands read cut-outs of the patterns; the detectors may leave the detector: same sums as one whole block."""
    sy, sx = 6, 7
    yy, xx = np.mgrid[:sy, :sx]
    shifts = np.stack([0.8 * yy - 2.1, -0.6 * xx + 1.7], axis=-1)  # whole-pixel steps inside every band
    data = _beam_data(shifts)
    discs = [(3.0, 20.0, 4.0), (19.3, 36.5, 4.0), (19.3, 20.6, 5.0)]  # two discs cross the detector's edge
    masks = np.stack([disc_mask(data.shape[2:], *d).astype(np.float32) for d in discs])
    whole = reduce_block_shifted(data, masks, shifts)
    for executor, rows in (("inline", 1), ("threads", 2), ("inline", None)):
        bands = virtual_images(data, discs, descan=np.array([19.3, 20.6]) + shifts, descan_reference=(19.3, 20.6),
                               executor=executor, rows_per_task=rows)
        np.testing.assert_allclose(np.moveaxis(bands, 0, 2), whole, rtol=1e-5, atol=1e-3)
    assert not np.allclose(whole, reduce_block_shifted(data, masks, np.zeros_like(shifts)))


def test_descan_bad_shape_is_refused():
    with pytest.raises(InputError, match="beam centre"):
        virtual_images(_beam_data(), [(19, 20, 4)], descan=np.zeros((3, 3, 2)))


# -- beam check ---------------------------------------------------------------------------------------------
def test_noise_has_no_clear_beam_and_no_stereo_angle():
    rng = np.random.default_rng(3)
    noise = rng.poisson(10.0, (8, 8, 64, 64)).astype(np.uint16)
    fit = fit_direct_beam(mean_pattern(noise))
    assert not fit.clear and fit.contrast_snr < 3 and "contrast" in fit.reason
    with pytest.raises(InputError, match="no clear direct-beam disc"):
        find_direct_beam(mean_pattern(noise))
    cal = calibrate(mean_pattern(noise), convergence_mrad=20.0)
    assert cal.mrad_per_px is None and cal.refused
    with pytest.raises(InputError, match="no calibration"):
        drive(iter_virtual_stereo_pair(noise, (30, 28, 4), (30, 36, 4), mrad_per_px=cal.mrad_per_px))


def test_clear_beam_reports_its_quality():
    fit = fit_direct_beam(mean_pattern(_beam_data()))
    assert fit.clear and fit.contrast_snr > 20 and fit.roundness > 0.95
    assert abs(fit.disc.cy - 19.3) < 0.3 and abs(fit.disc.cx - 20.6) < 0.3


def test_cli_on_noise_warns_and_writes_no_stereo_angle(tmp_path, capsys):
    rng = np.random.default_rng(4)
    np.save(tmp_path / "noise.npy", rng.poisson(10.0, (8, 8, 64, 64)).astype(np.uint16))
    rc = main(["virtual", str(tmp_path / "noise.npy"), "--disc", "30,28,4", "--disc", "30,36,4",
               "--convergence-mrad", "20", "-o", str(tmp_path / "out")])
    assert rc == 0
    assert "WARNING" in capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "detectors.json").read_text())
    assert record["calibration"]["mrad_per_px"] is None and record["calibration"]["refused"]
    assert record["calibration"]["fit"]["clear"] is False
    assert all(p["stereo_angle_deg"] is None for p in record["pairs"])


# -- one stereo-pair path ---------------------------------------------------------------------------------
def test_cli_pair_equals_the_core_pair(tmp_path):
    data = _beam_data(scan=(16, 16))
    np.save(tmp_path / "d.npy", data)
    discs = [(19.3, 16.6, 3.0), (21.3, 24.6, 3.0)]
    rc = main(["virtual", str(tmp_path / "d.npy"), "--disc", "19.3,16.6,3", "--disc", "21.3,24.6,3",
               "--direct-disc", "19.3,20.6,7", "--convergence-mrad", "21", "--scan-rotation", "10",
               "--pair", "0,1", "-o", str(tmp_path / "out")])
    assert rc == 0
    pair = drive(iter_virtual_stereo_pair(data, *discs, mrad_per_px=3.0, scan_rotation_deg=10.0))
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out" / "left.tif"), pair.left, rtol=1e-6)
    np.testing.assert_allclose(tifffile.imread(tmp_path / "out" / "right.tif"), pair.right, rtol=1e-6)
    record = json.loads((tmp_path / "out" / "detectors.json").read_text())
    assert record["stereo_pair"]["stereo_angle_deg"] == pytest.approx(pair.stereo_angle_deg)
    assert record["pairs"] == pair_geometry(discs, mrad_per_px=3.0, scan_rotation_deg=10.0)
    images = virtual_images(data, discs)
    again = compose_stereo_pair(images[0], images[1], *discs, mrad_per_px=3.0, scan_rotation_deg=10.0)
    np.testing.assert_allclose(again.left, pair.left)


def test_fourdstem_modules_import_no_circle():
    graph = {}
    for path in PACKAGE.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                deps.add(node.module.split(".")[0])
        graph[path.stem] = deps - {"__init__"}

    def reaches(start, target, seen=()):
        return any(d == target or (d not in seen and reaches(d, target, seen + (d,))) for d in graph.get(start, ()))

    circles = sorted(m for m in graph if m != "__init__" and reaches(m, m))
    assert circles == []


def test_disc_mask_helper_used_here_is_the_package_convention():
    assert disc_mask((5, 5), 2, 2, 1).sum() == 5


def test_npy_frames_reads_equal_numpy_for_every_kind_of_key(tmp_path):
    from napari_stereo_tem.fourdstem.loading import NpyFrames

    a = np.random.default_rng(0).integers(0, 1000, (5, 6, 7, 8)).astype(np.uint16)
    np.save(tmp_path / "t.npy", a)
    frames = NpyFrames.open(tmp_path / "t.npy")
    keys = [(slice(None),), (1,), (slice(1, 4), slice(None), slice(2, 5), slice(1, 7)),
            (slice(None, None, 2), slice(1, None, 3), slice(2, 5), slice(1, 7, 2)), (2, 3), (-1, -1),
            (slice(None), 3, slice(0, 7), slice(None)), (slice(0, 2), slice(0, 6), slice(0, 7), slice(3, 4)),
            (slice(0, 2), slice(None), slice(None, None, 2))]
    for key in keys:
        got = frames[key]
        assert got.shape == a[key].shape and np.array_equal(got, a[key]), key
    frames.prefetch((slice(None, None, 2), slice(None, None, 2), slice(0, 3), slice(None)))  # no error, no result
    strided = (slice(None, None, 2), slice(None, None, 3), slice(1, 4), slice(2, 6))
    assert np.array_equal(frames.read_strided(strided), a[strided])
    import pickle

    again = pickle.loads(pickle.dumps(frames))  # the preview mapping is not pickled
    assert np.array_equal(again[strided], a[strided]) and not hasattr(again, "_preview_view")
    frames.close_preview()

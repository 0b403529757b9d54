"""Every 4D format that can be read offline, on small files made here, with the axes decided from metadata.

Each file holds the same known dataset ``REF`` (scan 3 x 5, detector 12 x 10,
every value different), stored in the format's own layout; opening it must give
back ``REF`` as ``(scan_y, scan_x, det_y, det_x)``, and say how the axes were decided.
"""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.fourdstem import open_4dstem, virtual_images
from napari_stereo_tem.fourdstem.axes import axis_role, decide_axes, unit_role

from format_writers import (disc_centre, disc_patterns, write_app5, write_de_movie, write_dm, write_emi,
                            write_mrc, write_py4dstem, write_ser, write_usid, write_velox)

SCAN, DET = (3, 5), (12, 10)
REF = (np.arange(np.prod(SCAN + DET), dtype=np.uint16) % 997).reshape(SCAN + DET)
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def _check(ds, by=None, ref=REF):
    assert ds.shape == ref.shape, ds.metadata.get("axes_decision")
    np.testing.assert_array_equal(np.asarray(ds.data.compute()), ref)
    decision = ds.metadata["axes_decision"]
    assert decision["text"]
    if by is not None:
        assert decision["by"] == by, decision["text"]
    return decision


def _write_emd(path, data, names, group="fpd_expt/fpd_data"):
    """An EMD v0.2 file (the layout FPD writes): data plus dim1..dimN datasets with a ``name`` attribute."""
    with h5py.File(path, "w") as f:
        f.attrs["version_major"], f.attrs["version_minor"] = 0, 2
        g = f.create_group(group)
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=data)
        for i, (name, size) in enumerate(zip(names, data.shape)):
            dim = g.create_dataset(f"dim{i + 1}", data=np.arange(size, dtype=float))
            dim.attrs["name"], dim.attrs["units"] = name, "px"


# -- the decision itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, role", [
    ("scanY", ("scan", "y")), ("scan_x", ("scan", "x")), ("detX", ("detector", "x")),
    ("det_y", ("detector", "y")), ("x", ("scan", None)), ("qx", ("detector", None)), ("kY", ("detector", None)),
    ("Rx", ("scan", None)), ("channel", (None, None)), ("", (None, None)),
])
def test_axis_roles_from_names(name, role):
    assert axis_role(name) == role


def test_names_beat_position_and_rows_follow_y():
    axes = [{"name": n} for n in ("detX", "scanY", "detY", "scanX")]
    d = decide_axes((10, 3, 12, 5), axes)
    assert d.order == (1, 3, 2, 0) and d.by == "axis names"
    assert d.names == ("scanY", "scanX", "detY", "detX")


def test_navigation_flags_when_names_say_nothing():
    axes = [{"name": "", "navigate": f} for f in (False, True, False, True)]
    d = decide_axes((12, 3, 10, 5), axes)
    assert d.order == (1, 3, 0, 2) and d.by == "navigation flags"


def test_names_contradicting_flags_win_and_are_reported():
    axes = [{"name": n, "navigate": f} for n, f in (("detY", True), ("detX", True), ("scanY", False), ("scanX", False))]
    d = decide_axes((12, 10, 3, 5), axes)
    assert d.order == (2, 3, 0, 1) and "say otherwise" in d.describe()


@pytest.mark.parametrize("units, role", [
    ("nm", "scan"), ("µm", "scan"), ("Å", "scan"), ("1/nm", "detector"), ("1 / nm", "detector"),
    ("nm^-1", "detector"), ("Å⁻¹", "detector"), ("mrad", "detector"), ("mrads", "detector"),
    ("", None), ("<undefined>", None), ("s", None), ("eV", None),
])
def test_unit_roles(units, role):
    assert unit_role(units) == role


def test_units_beat_flags_that_are_guesses_and_say_so():
    axes = [{"units": u, "navigate": f} for u, f in (("1/nm", True), ("1/nm", True), ("nm", False), ("nm", False))]
    d = decide_axes((12, 10, 3, 5), axes)
    assert d.order == (2, 3, 0, 1) and d.by == "axis units" and "say otherwise" in d.describe()
    assert decide_axes((3, 5, 12, 10), axes[2:] + axes[:2]).by == "axis units"


def test_no_metadata_is_by_position_and_says_so():
    d = decide_axes((3, 5, 12, 10))
    assert d.order == (0, 1, 2, 3) and d.by == "position" and "position" in d.describe()


# -- one test per format ------------------------------------------------------------------------------
def test_npy(tmp_path):
    np.save(tmp_path / "a.npy", REF)
    _check(open_4dstem(tmp_path / "a.npy"), by="position")


def test_zarr_with_dimension_names_in_an_unusual_order(tmp_path):
    import zarr

    stored = REF.transpose(3, 0, 2, 1)  # (det_x, scan_y, det_y, scan_x)
    z = zarr.open(str(tmp_path / "a.zarr"), mode="w", shape=stored.shape, dtype=stored.dtype, chunks=stored.shape)
    z[:] = stored
    z.attrs["_ARRAY_DIMENSIONS"] = ["det_x", "scan_y", "det_y", "scan_x"]
    _check(open_4dstem(tmp_path / "a.zarr"), by="axis names")


@pytest.mark.parametrize("ext", ["hspy", "zspy"])
def test_hyperspy_files(tmp_path, ext):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(REF)
    s.save(tmp_path / f"a.{ext}")
    decision = _check(open_4dstem(tmp_path / f"a.{ext}"))
    assert "navigation flags" in decision["by"]


def test_blockfile(tmp_path):
    import hyperspy.api as hs

    ref = (REF[..., :10, :10] % 251).astype(np.uint8)  # blockfiles hold square patterns
    hs.signals.Signal2D(ref).save(tmp_path / "a.blo")
    _check(open_4dstem(tmp_path / "a.blo"), ref=ref)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/realdata not present")
def test_merlin_mib_real_file():
    ds = open_4dstem(REAL / "001_4x2_6bit.mib")
    assert ds.shape == (2, 4, 256, 256)
    assert ds.metadata["axes_decision"]["by"] == "navigation flags"


@pytest.mark.parametrize("five", [False, True])
def test_fpd_style_emd_names_in_file_order(tmp_path, five):
    """The layout of the real FPD file: (scanY, scanX, detY, detX[, channel]), read back reversed by the reader."""
    data = REF[..., None] if five else REF
    names = ("scanY", "scanX", "detY", "detX", "channel")[:data.ndim]
    _write_emd(tmp_path / "fpd.hdf5", data, names)
    ds = open_4dstem(tmp_path / "fpd.hdf5")
    decision = _check(ds, by="axis names")
    assert decision["names"] == ["scanY", "scanX", "detY", "detX"]
    assert "scanY (3)" in decision["text"] and "detX (10)" in decision["text"]


def test_fpd_style_16x16_scan_256x256_detector_is_not_swapped(tmp_path):
    """The issue's file: a 16x16 scan of 256x256 patterns must not open as a 256x256 scan of 16x16 patterns."""
    data = np.zeros((16, 16, 256, 256), np.uint16)
    data[..., 118:138, 100:120] = 50  # a beam off-centre, so a transposed detector would show
    data[3, 7] += 1
    _write_emd(tmp_path / "fpd.hdf5", data, ("scanY", "scanX", "detY", "detX"))
    ds = open_4dstem(tmp_path / "fpd.hdf5")
    assert ds.scan_shape == (16, 16) and ds.detector_shape == (256, 256)
    image = virtual_images(ds, [(127.5, 109.5, 8)])[0]
    assert image.shape == (16, 16) and np.unravel_index(np.argmax(image), image.shape) == (3, 7)


def test_fpd_layout_without_emd_version_read_by_h5py_with_a_trailing_channel(tmp_path):
    """The FPD layout in a file RosettaSciIO's EMD reader refuses: the dim1..dim5 names still decide."""
    with h5py.File(tmp_path / "fpd.h5", "w") as f:
        g = f.create_group("fpd_expt/fpd_data")
        g.create_dataset("data", data=REF[..., None])
        for i, name in enumerate((b"scanY", b"scanX", b"detY", b"detX", b"channel")):
            g.create_dataset(f"dim{i + 1}", data=np.arange(REF[..., None].shape[i], dtype=float)).attrs["name"] = name
        f.create_dataset("fpd_expt/fpd_sum_im/data", data=REF.sum(axis=(2, 3)))
    ds = open_4dstem(tmp_path / "fpd.h5")
    _check(ds, by="axis names")
    assert ds.metadata["reader"].startswith("h5py")


def test_emd_with_names_in_an_unusual_order(tmp_path):
    stored = REF.transpose(2, 1, 3, 0)  # (det_y, scan_x, det_x, scan_y)
    _write_emd(tmp_path / "odd.emd", stored, ("detY", "scanX", "detX", "scanY"), group="data/odd")
    _check(open_4dstem(tmp_path / "odd.emd"), by="axis names")


def test_plain_hdf5_with_dimension_labels(tmp_path):
    stored = REF.transpose(2, 3, 0, 1)  # (det_y, det_x, scan_y, scan_x)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        d = f.create_dataset("entry/frames", data=stored)
        for i, label in enumerate(("detector_y", "detector_x", "scan_y", "scan_x")):
            d.dims[i].label = label
    ds = open_4dstem(tmp_path / "plain.h5")
    _check(ds, by="axis names")
    assert ds.metadata["reader"].startswith("h5py")


def _write_arina(folder: Path, frames: np.ndarray, *, per_file: int = 6):
    """A DECTRIS Arina master file with external, bitshuffle-LZ4 compressed data files (its real layout)."""
    import hdf5plugin

    with h5py.File(folder / "scan_master.h5", "w") as master:
        for k, start in enumerate(range(0, len(frames), per_file)):
            name = f"scan_data_{k + 1:06d}.h5"
            with h5py.File(folder / name, "w") as part:
                part.create_dataset("entry/data/data", data=frames[start:start + per_file],
                                    chunks=(1, *frames.shape[1:]), **hdf5plugin.Bitshuffle(cname="lz4"))
            master[f"entry/data/data_{k + 1:06d}"] = h5py.ExternalLink(name, "entry/data/data")


def test_arina_master_file_compressed(tmp_path):
    ref = np.ascontiguousarray(REF[..., :10, :10])  # RosettaSciIO's Arina reader takes square detectors
    _write_arina(tmp_path, ref.reshape(-1, 10, 10))
    ds = open_4dstem(tmp_path / "scan_master.h5", scan_shape=SCAN)
    _check(ds, ref=ref)
    assert "read into memory" in ds.metadata["note"]
    assert ds.metadata["reader"] == "rsciio.Arina"


def _without_package(monkeypatch, package: str, reader: str) -> None:
    """Make ``package`` look uninstalled (whether it is or not) to RosettaSciIO's ``reader`` module."""
    import builtins
    import sys

    for name in [m for m in sys.modules if m == package or m.startswith(package + ".") or m.startswith(reader)]:
        monkeypatch.delitem(sys.modules, name)
    real_import = builtins.__import__

    def hidden(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ModuleNotFoundError(f"No module named '{package}'", name=package)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", hidden)


def test_arina_without_hdf5plugin_names_the_package(tmp_path, monkeypatch):
    _write_arina(tmp_path, REF.reshape(-1, *DET))
    _without_package(monkeypatch, "hdf5plugin", "rsciio.arina")
    with pytest.raises(InputError, match="hdf5plugin") as err:
        open_4dstem(tmp_path / "scan_master.h5", scan_shape=SCAN)
    assert "pip install hdf5plugin" in str(err.value)


def test_nexus(tmp_path):
    import hyperspy.api as hs

    hs.signals.Signal2D(REF).save(tmp_path / "a.nxs")
    _check(open_4dstem(tmp_path / "a.nxs"))


def test_tvips_stack_with_scan_shape(tmp_path):
    import hyperspy.api as hs

    hs.signals.Signal2D(REF.reshape(-1, *DET)).save(tmp_path / "a.tvips")
    files = sorted(tmp_path.glob("*.tvips"))
    ds = open_4dstem(files[0], scan_shape=SCAN)
    assert ds.shape == REF.shape
    np.testing.assert_array_equal(np.asarray(ds.data.compute()), REF)


def test_empad(tmp_path):
    """EMPAD: an XML header and a raw float32 file of 128 x 130 frames (two rows of metadata each)."""
    sy, sx = SCAN
    frames = np.zeros((sy, sx, 130, 128), np.float32)
    ref = np.arange(sy * sx * 128 * 128, dtype=np.float32).reshape(sy, sx, 128, 128) % 1000
    frames[:, :, :128] = ref
    raw = f"scan_x{sx}_y{sy}.raw"
    frames.tofile(tmp_path / raw)
    (tmp_path / "a.xml").write_text(
        f'<root><raw_file filename="{raw}"/><pix_x>{sx}</pix_x><pix_y>{sy}</pix_y></root>')
    ds = open_4dstem(tmp_path / "a.xml")
    assert ds.shape == (sy, sx, 128, 128)
    np.testing.assert_array_equal(np.asarray(ds.data.compute()), ref)
    assert "navigation flags" in ds.metadata["axes_decision"]["by"]


def test_reader_metadata_is_json(tmp_path):
    _write_emd(tmp_path / "fpd.hdf5", REF, ("scanY", "scanX", "detY", "detX"))
    json.dumps(open_4dstem(tmp_path / "fpd.hdf5").metadata["axes_decision"])


# -- vendors' formats, written here by tests/format_writers.py: a disc whose place encodes the scan position ---
PATTERNS = disc_patterns()  # scan 4 x 5, detector 16 x 18


def _check_discs(ds, by=None, ref=PATTERNS):
    """The whole dataset, and the disc of a few scan positions where it belongs (a swap or transpose moves it)."""
    assert ds.shape == ref.shape, ds.metadata.get("axes_decision")
    data = np.asarray(ds.data.compute())
    np.testing.assert_array_equal(data, ref)
    sy, sx = ref.shape[:2]
    for iy, ix in ((0, 0), (0, sx - 1), (sy - 1, 0), (sy - 1, sx - 1), (1, 2)):
        rows, cols = np.nonzero(data[iy, ix] >= 1000)
        assert (rows.mean(), cols.mean()) == disc_centre(iy, ix), (iy, ix)
    decision = ds.metadata["axes_decision"]
    if by is not None:
        assert decision["by"] == by, decision["text"]
    return decision


def test_direct_electron_mrc_movie_takes_its_scan_from_the_info_file(tmp_path):
    movie = write_de_movie(tmp_path, PATTERNS)
    ds = open_4dstem(movie)
    decision = _check_discs(ds, by="axis names and navigation flags")
    assert decision["names"] == ["y", "x", "ky", "kx"] and ds.metadata["reader"] == "rsciio.MRC"
    with pytest.raises(InputError, match="scan shape"):
        open_4dstem(movie, scan_shape=(5, 4))


def test_direct_electron_serpentine_scan_placed_by_its_coordinates_file(tmp_path):
    """Frames stored in the order visited (odd rows right to left) land where the scan coordinates say."""
    movie = write_de_movie(tmp_path, PATTERNS, serpentine=True)
    _check_discs(open_4dstem(movie), by="axis names and navigation flags")


def test_mrc_stack_needs_and_follows_the_scan_shape(tmp_path):
    write_mrc(tmp_path / "stack.mrc", PATTERNS.reshape(-1, *PATTERNS.shape[2:]))
    with pytest.raises(InputError, match="scan_shape"):
        open_4dstem(tmp_path / "stack.mrc")
    decision = _check_discs(open_4dstem(tmp_path / "stack.mrc", scan_shape=(4, 5)), by="the scan_shape given")
    assert "20 frames" in decision["text"]


def test_py4dstem_emd_1_datacube(tmp_path):
    write_py4dstem(tmp_path / "cube.h5", PATTERNS)
    ds = open_4dstem(tmp_path / "cube.h5")
    decision = _check_discs(ds, by="axis names")
    assert decision["names"] == ["Rx", "Ry", "Qx", "Qy"] and ds.metadata["reader"] == "rsciio.EMD"
    assert [a["units"] for a in ds.metadata["axes"]] == ["Å", "Å", "1 / Å", "1 / Å"]


def test_tia_ser(tmp_path):
    write_ser(tmp_path / "scan_1.ser", PATTERNS)
    ds = open_4dstem(tmp_path / "scan_1.ser")
    _check_discs(ds, by="navigation flags")
    assert ds.metadata["reader"] == "rsciio.TIA" and "read into memory" in ds.metadata["note"]
    assert ds.metadata["axes"][0]["scale"] == pytest.approx(1.0) and ds.metadata["axes"][0]["units"] == "nm"


def test_tia_emi_with_its_ser_diffraction_units(tmp_path):
    """Opened through its .emi, the series is known to be diffraction: the detector in 1/nm, and the units agree."""
    write_ser(tmp_path / "scan_1.ser", PATTERNS)
    write_emi(tmp_path / "scan.emi")
    ds = open_4dstem(tmp_path / "scan.emi")
    _check_discs(ds, by="axis units and navigation flags")
    assert [a["units"] for a in ds.metadata["axes"]] == ["nm", "nm", "1 / nm", "1 / nm"]


def test_velox_emd_camera_series_with_scan_shape(tmp_path):
    write_velox(tmp_path / "series.emd", PATTERNS.reshape(-1, *PATTERNS.shape[2:]))
    ds = open_4dstem(tmp_path / "series.emd", scan_shape=(4, 5))
    _check_discs(ds, by="the scan_shape given")
    assert ds.metadata["reader"] == "rsciio.EMD"


def test_topspin_app5(tmp_path):
    write_app5(tmp_path / "scan.app5", PATTERNS)
    ds = open_4dstem(tmp_path / "scan.app5")
    _check_discs(ds, by="axis names and navigation flags")
    assert ds.metadata["reader"] == "rsciio.Topspin" and "read into memory" in ds.metadata["note"]
    assert [a["units"] for a in ds.metadata["axes"]] == ["nm", "nm", "mrad", "mrad"]


@pytest.mark.parametrize("version", [4, 3])
@pytest.mark.parametrize("layout", ["patterns contiguous", "scan fastest"])
def test_digitalmicrograph_4d_either_layout_decided_by_units(tmp_path, layout, version):
    """DM keeps only each dimension's units: Gatan writes 4D-STEM with the detector or the scan as DM's x, y."""
    sy, sx, ny, nx = PATTERNS.shape
    scan, det = [(sx, 2.0, "nm"), (sy, 2.0, "nm")], [(nx, 0.05, "1/nm"), (ny, 0.05, "1/nm")]
    path = tmp_path / f"a.dm{version}"
    if layout == "patterns contiguous":
        write_dm(path, PATTERNS, det + scan, version=version)
    else:
        write_dm(path, np.ascontiguousarray(PATTERNS.transpose(2, 3, 0, 1)), scan + det, version=version)
    for lazy in (True, False):
        ds = open_4dstem(path, lazy=lazy)
        decision = _check_discs(ds, by="axis units")
        assert decision["order"] == ([0, 1, 2, 3] if layout == "patterns contiguous" else [2, 3, 0, 1])
        assert [a["units"] for a in ds.metadata["axes"]] == ["nm", "nm", "1/nm", "1/nm"]


def test_digitalmicrograph_dm4_without_units_is_by_position_and_says_so(tmp_path):
    sy, sx, ny, nx = PATTERNS.shape
    write_dm(tmp_path / "a.dm4", PATTERNS, [(nx, 1.0, ""), (ny, 1.0, ""), (sx, 1.0, ""), (sy, 1.0, "")])
    decision = _check_discs(open_4dstem(tmp_path / "a.dm4"), by="position")
    assert "names no axis roles" in decision["text"]


def test_usid_without_pyusid_names_the_package(tmp_path, monkeypatch):
    write_usid(tmp_path / "scan.h5", PATTERNS)
    _without_package(monkeypatch, "pyUSID", "rsciio.usid")
    with pytest.raises(InputError, match="pip install pyUSID"):
        open_4dstem(tmp_path / "scan.h5")


def test_mrcz_without_mrcz_names_the_package(tmp_path, monkeypatch):
    write_mrc(tmp_path / "stack.mrcz", PATTERNS.reshape(-1, *PATTERNS.shape[2:]))  # an uncompressed MRCZ file
    _without_package(monkeypatch, "mrcz", "rsciio.mrcz")
    with pytest.raises(InputError, match="pip install mrcz"):
        open_4dstem(tmp_path / "stack.mrcz", scan_shape=(4, 5))

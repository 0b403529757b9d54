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
from napari_stereo_tem.fourdstem.axes import axis_role, decide_axes

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


def test_arina_without_hdf5plugin_names_the_package(tmp_path, monkeypatch):
    import builtins
    import sys

    _write_arina(tmp_path, REF.reshape(-1, *DET))
    for name in [m for m in sys.modules if m == "hdf5plugin" or m.startswith("hdf5plugin.")
                 or m.startswith("rsciio.arina")]:
        monkeypatch.delitem(sys.modules, name)
    real_import = builtins.__import__

    def no_hdf5plugin(name, *args, **kwargs):
        if name == "hdf5plugin" or name.startswith("hdf5plugin."):
            raise ModuleNotFoundError("No module named 'hdf5plugin'", name="hdf5plugin")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hdf5plugin)
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

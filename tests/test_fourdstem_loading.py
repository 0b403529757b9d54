"""Readers of 4D-STEM data: real detector files, lazy .npy memmaps, bad input."""

import pickle
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.fourdstem import open_4dstem, open_pattern
from napari_stereo_tem.fourdstem.loading import ArrayFrames, NpyFrames

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/realdata not present")


def _rsciio_eager(path):
    import importlib

    module = "rsciio.blockfile" if path.suffix == ".blo" else "rsciio.quantumdetector"
    return importlib.import_module(module).file_reader(str(path), lazy=False)[0]["data"]


@needs_real
@pytest.mark.parametrize("name, shape, dtype", [
    ("001_4x2_6bit.mib", (2, 4, 256, 256), np.uint8),
    ("002_4x2_6bit_roi128.mib", (2, 4, 128, 256), np.uint8),
    ("SingleMIB.mib", (1, 1, 256, 256), np.dtype(">u2")),
    ("CL_380mm_Si110_200kV.mib", (1, 1, 256, 256), np.dtype(">u2")),
    ("test1.blo", (3, 2, 144, 144), np.uint8),
])
def test_real_files_shape_dtype_orientation(name, shape, dtype):
    ds = open_4dstem(REAL / name)
    assert isinstance(ds.data, da.Array)
    assert ds.shape == shape and ds.data.shape == shape
    assert ds.dtype == dtype
    assert ds.metadata["source"].endswith(name)
    eager = _rsciio_eager(REAL / name).reshape(shape)
    np.testing.assert_array_equal(ds.data.compute(), eager)  # same orientation as RosettaSciIO


@needs_real
def test_non_square_detector_region_is_rows_by_cols():
    ds = open_4dstem(REAL / "002_4x2_6bit_roi128.mib")
    assert ds.detector_shape == (128, 256)
    full = open_4dstem(REAL / "001_4x2_6bit.mib")
    # the 128-row region is a band of the same sensor: its mean pattern is not constant
    assert ds.data.mean(axis=(0, 1)).compute().std() > 0 and full.scan_shape == ds.scan_shape


@needs_real
def test_mib_without_hdr(tmp_path):
    shutil.copy(REAL / "001_4x2_6bit.mib", tmp_path / "a.mib")
    ds = open_4dstem(tmp_path / "a.mib")
    ref = open_4dstem(REAL / "001_4x2_6bit.mib")
    np.testing.assert_array_equal(ds.data.compute().reshape(-1, 256, 256), ref.data.compute().reshape(-1, 256, 256))


@needs_real
def test_truncated_mib_mid_frame(tmp_path):
    raw = (REAL / "001_4x2_6bit.mib").read_bytes()
    (tmp_path / "cut.mib").write_bytes(raw[: len(raw) // 2 + 1000])
    shutil.copy(REAL / "001_4x2_6bit.hdr", tmp_path / "cut.hdr")
    with pytest.raises(InputError, match="truncated"):
        open_4dstem(tmp_path / "cut.mib")
    (tmp_path / "cut2.mib").write_bytes(raw[: len(raw) // 2 + 1000])  # no .hdr either
    with pytest.raises(InputError, match="incomplete"):
        open_4dstem(tmp_path / "cut2.mib")


@needs_real
def test_truncated_mib_whole_frames_against_hdr(tmp_path):
    raw = (REAL / "001_4x2_6bit.mib").read_bytes()
    frame = len(raw) // 8
    (tmp_path / "short.mib").write_bytes(raw[: 5 * frame])
    shutil.copy(REAL / "001_4x2_6bit.hdr", tmp_path / "short.hdr")
    with pytest.raises(InputError, match="promises 8 frames, the file holds 5"):
        open_4dstem(tmp_path / "short.mib")


@needs_real
def test_truncated_blockfile(tmp_path):
    raw = (REAL / "test1.blo").read_bytes()
    (tmp_path / "cut.blo").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated"):
        open_4dstem(tmp_path / "cut.blo")


@needs_real
def test_open_pattern_single_frame():
    p = open_pattern(REAL / "SingleMIB.mib")
    assert p.shape == (256, 256) and p.dtype == np.float64 and p.max() > 100


def test_npy_is_memory_mapped_not_copied(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 500, (5, 6, 16, 12), dtype=np.uint16)
    np.save(tmp_path / "d.npy", arr)
    ds = open_4dstem(tmp_path / "d.npy")
    assert isinstance(ds.frames, NpyFrames)
    assert ds.shape == arr.shape and ds.dtype == np.uint16
    np.testing.assert_array_equal(ds.data.compute(), arr)
    np.testing.assert_array_equal(ds.data[1:3, 2, 4:9, 3].compute(), arr[1:3, 2, 4:9, 3])
    clone = pickle.loads(pickle.dumps(ds.frames))  # workers reopen the file, nothing big is pickled
    assert len(pickle.dumps(ds.frames)) < 1000
    np.testing.assert_array_equal(clone[4, 5], arr[4, 5])


def test_user_memmap_is_wrapped(tmp_path):
    arr = np.arange(2 * 3 * 8 * 8, dtype=np.uint16).reshape(2, 3, 8, 8)
    np.save(tmp_path / "m.npy", arr)
    mm = np.load(tmp_path / "m.npy", mmap_mode="r")
    ds = open_4dstem(mm)
    assert isinstance(ds.frames, NpyFrames)
    np.testing.assert_array_equal(ds.data.compute(), arr)


def test_arrays_and_signals_are_accepted():
    import hyperspy.api as hs

    arr = np.arange(2 * 3 * 8 * 10, dtype=np.uint16).reshape(2, 3, 8, 10)
    ds = open_4dstem(arr)
    assert isinstance(ds.frames, ArrayFrames) and ds.frames.array is arr  # not copied
    np.testing.assert_array_equal(open_4dstem(da.from_array(arr, chunks=1)).data.compute(), arr)
    sig = hs.signals.Signal2D(arr)
    ds = open_4dstem(sig.as_lazy())
    assert ds.signal is not None and ds.shape == arr.shape
    np.testing.assert_array_equal(ds.data.compute(), arr)
    assert open_4dstem(arr, lazy=False).shape == arr.shape


@pytest.mark.parametrize("ext", ["hspy", "zspy", "emd"])
def test_hyperspy_formats_roundtrip(tmp_path, ext):
    import hyperspy.api as hs

    arr = np.arange(2 * 3 * 8 * 10, dtype=np.uint16).reshape(2, 3, 8, 10)
    hs.signals.Signal2D(arr).save(tmp_path / f"d.{ext}")
    ds = open_4dstem(tmp_path / f"d.{ext}")
    assert isinstance(ds.data, da.Array)
    np.testing.assert_array_equal(ds.data.compute(), arr)


def test_zarr(tmp_path):
    import zarr

    arr = np.arange(2 * 3 * 8 * 10, dtype=np.uint16).reshape(2, 3, 8, 10)
    zarr.save(str(tmp_path / "d.zarr"), arr)
    np.testing.assert_array_equal(open_4dstem(tmp_path / "d.zarr").data.compute(), arr)


def test_three_d_needs_a_scan_shape(tmp_path):
    stack = np.zeros((6, 8, 8), np.uint8)
    with pytest.raises(InputError, match="3D .* 4D .* scan_shape"):
        open_4dstem(stack)
    assert open_4dstem(stack, scan_shape=(2, 3)).shape == (2, 3, 8, 8)
    with pytest.raises(InputError, match="needs 4"):
        open_4dstem(stack, scan_shape=(2, 2))
    np.save(tmp_path / "s.npy", stack)
    with pytest.raises(InputError, match="3D"):
        open_4dstem(tmp_path / "s.npy")
    assert open_4dstem(tmp_path / "s.npy", scan_shape=(3, 2)).shape == (3, 2, 8, 8)


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_4dstem(tmp_path / "nope.mib")
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="npy"):
        open_4dstem(tmp_path / "x.npy")
    (tmp_path / "x.mib").write_bytes(b"not a merlin file at all" * 20)
    with pytest.raises(InputError, match="MerlinEM"):
        open_4dstem(tmp_path / "x.mib")
    (tmp_path / "x.weird").write_bytes(b"1234")
    with pytest.raises(InputError, match="no reader"):
        open_4dstem(tmp_path / "x.weird")
    with pytest.raises(InputError, match="4D"):
        open_4dstem(np.zeros((4, 4)))

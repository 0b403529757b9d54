"""One-pass virtual detectors against a plain numpy reference, on every executor."""

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.fourdstem import (
    Disc,
    disc_mask,
    iter_virtual_images,
    open_4dstem,
    preview_virtual_image,
    radius_sweep,
    virtual_images,
)
from napari_stereo_tem.progress import Cancelled, Progress, drive

DISCS = [(20, 24, 6), (10.5, 30.2, 4.3), Disc(25, 10, 8, inner_radius=3), (0, 0, 2.5)]


def _data(seed=0, shape=(9, 7, 40, 48)):
    return np.random.default_rng(seed).integers(0, 4000, shape, dtype=np.uint16)


def _reference(data, discs):
    out = []
    for d in discs:
        d = d if isinstance(d, Disc) else Disc(*d)
        m = disc_mask(data.shape[2:], d.cy, d.cx, d.radius, inner_radius=d.inner_radius)
        out.append((data.astype(np.float64) * m).sum(axis=(2, 3)))
    return np.stack(out)


def test_disc_mask_convention():
    # pixel centres at integers, boundary included
    m = disc_mask((5, 5), 2, 2, 1)
    assert m.sum() == 5 and m[2, 1] and m[1, 2] and not m[1, 1]
    assert disc_mask((5, 5), 2, 2, np.sqrt(2)).sum() == 9
    m = disc_mask((6, 6), 2.5, 2.5, 0.75)
    assert m.sum() == 4 and m[2:4, 2:4].all()
    assert disc_mask((5, 5), 2, 2, 2, inner_radius=1.5).sum() == 13 - 9


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_equals_numpy_reference(executor):
    data = _data()
    out = virtual_images(data, DISCS, executor=executor, rows_per_task=2)
    assert out.shape == (len(DISCS), 9, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(data, DISCS), rtol=1e-6)


def test_local_cluster_two_workers():
    from distributed import Client, LocalCluster

    data = _data(1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = virtual_images(data, DISCS, executor=client, rows_per_task=3)
        assert len(client.scheduler_info()["workers"]) == 2
        # and by scheduler address
        again = virtual_images(data, DISCS[:2], executor=cluster.scheduler_address)
    np.testing.assert_allclose(out, _reference(data, DISCS), rtol=1e-6)
    np.testing.assert_allclose(again, out[:2], rtol=1e-6)


@pytest.mark.slow
def test_local_cluster_processes_reads_npy_file(tmp_path):
    from distributed import Client, LocalCluster

    data = _data(2, (6, 5, 32, 32))
    np.save(tmp_path / "d.npy", data)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = virtual_images(tmp_path / "d.npy", [(16, 16, 5), (10, 20, 3)], executor=client, rows_per_task=2)
    np.testing.assert_allclose(out, _reference(data, [(16, 16, 5), (10, 20, 3)]), rtol=1e-6)


def test_dask_input_with_split_detector_chunks_and_npy(tmp_path):
    import dask.array as da

    data = _data(3)
    lazy = da.from_array(data, chunks=(2, 3, 16, 16))
    np.testing.assert_allclose(virtual_images(lazy, DISCS), _reference(data, DISCS), rtol=1e-6)
    np.save(tmp_path / "d.npy", data)
    np.testing.assert_allclose(virtual_images(tmp_path / "d.npy", DISCS, executor="threads"),
                               _reference(data, DISCS), rtol=1e-6)


def test_masks_and_big_values():
    data = np.full((3, 4, 20, 20), 65535, dtype=np.uint16)
    weights = np.zeros((20, 20), np.float32)
    weights[3:7, 2:5] = 0.5
    out = virtual_images(data, [weights, (10, 10, 9)])
    np.testing.assert_allclose(out[0], 65535 * 0.5 * 12)
    np.testing.assert_allclose(out[1], 65535.0 * disc_mask((20, 20), 10, 10, 9).sum(), rtol=1e-6)


def test_progress_and_cancel():
    data = _data()
    reports = []
    virtual_images(data, DISCS, rows_per_task=1, on_progress=reports.append)
    assert all(isinstance(r, Progress) for r in reports) and reports[-1].done == reports[-1].total == 9
    with pytest.raises(Cancelled):
        drive(iter_virtual_images(data, DISCS, rows_per_task=1, executor="threads"), should_stop=lambda: True)


def test_bad_detectors_and_executor():
    data = _data()
    with pytest.raises(InputError, match="covers no pixel"):
        virtual_images(data, [(500, 500, 3)])
    with pytest.raises(InputError, match="radius must be positive"):
        virtual_images(data, [(5, 5, 0)])
    with pytest.raises(InputError, match="no virtual detector"):
        virtual_images(data, [])
    with pytest.raises(InputError, match="executor"):
        virtual_images(data, [(5, 5, 3)], executor="gpu")
    with pytest.raises(InputError, match="3D"):
        virtual_images(data[0], [(5, 5, 3)])


def test_preview_is_strided_exact_image(tmp_path):
    data = _data(4, (16, 12, 40, 48))
    ds = open_4dstem(data)
    exact = virtual_images(ds, [(20, 24, 6)])[0]
    prev = preview_virtual_image(ds, (20, 24, 6), max_pixels=48)  # stride 2 -> 8 x 6 positions
    assert prev.shape == exact.shape and prev.dtype == np.float32
    np.testing.assert_allclose(prev[::2, ::2], exact[::2, ::2], rtol=1e-6)
    np.testing.assert_allclose(prev[1::2, 1::2], exact[::2, ::2], rtol=1e-6)  # repeated over 2x2 blocks
    np.testing.assert_allclose(preview_virtual_image(ds, (20, 24, 6), full=True), exact)
    np.testing.assert_allclose(preview_virtual_image(data, (20, 24, 6), max_pixels=10**6), exact, rtol=1e-6)
    np.save(tmp_path / "d.npy", data)  # on disk: the strided box is read from the file
    np.testing.assert_allclose(preview_virtual_image(tmp_path / "d.npy", (20, 24, 6), max_pixels=48), prev)


def test_radius_sweep_writes_a_labelled_set(tmp_path):
    from napari_stereo_tem.models.training_set import list_entries, load_entry

    data = _data(5, (12, 10, 40, 48))
    label = np.zeros((12, 10), np.uint8)
    label[3, 2:5] = 1
    images = radius_sweep(data, (20, 24), [3, 6, 9], label=label, directory=tmp_path / "set")
    np.testing.assert_allclose(images, _reference(data, [(20, 24, r) for r in (3, 6, 9)]), rtol=1e-6)
    entries = list_entries(tmp_path / "set")
    assert len(entries) == 3
    records = [e.record["provenance"] for e in entries]
    assert [r["radius"] for r in records] == [3, 6, 9] and len({r["sweep_id"] for r in records}) == 1
    loaded = load_entry(entries[1])
    np.testing.assert_array_equal(loaded["mask_left"], label)
    np.testing.assert_allclose(loaded["left"], images[1])
    radius_sweep(data, (20, 24), [4], label=label, directory=tmp_path / "set")
    assert len(list_entries(tmp_path / "set")) == 4  # appended, nothing overwritten
    with pytest.raises(InputError, match="label"):
        radius_sweep(data, (20, 24), [4], label=np.zeros((3, 3), np.uint8), directory=tmp_path / "set")
    with pytest.raises(InputError, match="label="):
        radius_sweep(data, (20, 24), [4], directory=tmp_path / "set")


def test_distant_discs_are_read_in_separate_boxes_and_kept_in_order():
    from napari_stereo_tem.fourdstem.masks import detector_masks, group_detectors

    discs = [(5, 5, 3), (30, 40, 3), (6, 7, 3), (20, 20, 12), (21, 20, 5)]
    groups = group_detectors(detector_masks(discs, (40, 48)))
    members = sorted(tuple(int(i) for i in g[2]) for g in groups)
    assert members == [(0, 2), (1,), (3, 4)]
    data = _data(6)
    np.testing.assert_allclose(virtual_images(data, discs), _reference(data, discs), rtol=1e-6)

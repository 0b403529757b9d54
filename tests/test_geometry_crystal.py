"""Crystal frame: metric tensors, orientation, fractional coordinates, [uvw] and (hkl) of lines."""

import numpy as np
import pytest
from diffpy.structure import Lattice

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.crystal_frame import CrystalFrame, reduce_indices


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def _bowed_line(direction, bow_direction, *, n=60, length=200.0, bow=15.0, origin=(250.0, 260.0, 10.0)):
    """A line along `direction`, bowed (symmetrically) along `bow_direction`: lies in their plane."""
    s = np.linspace(-1, 1, n)
    return (np.asarray(origin) + np.outer(s * length / 2, _unit(direction))
            + np.outer(bow * (1 - s**2) - bow / 3, _unit(bow_direction)))


def test_cubic_by_hand_line_110_and_planes():
    # Zone [001] along the beam, g = (100) along +x, no tilt: crystal axes = image axes.
    frame = CrystalFrame(0.36, 0.36, 0.36, 90, 90, 90, zone_axis=(0, 0, 1), g=(1, 0, 0), g_angle_deg=0.0)
    np.testing.assert_allclose(frame.rotation, np.eye(3), atol=1e-12)
    # [110] is not in (111) ([110].(111) = 2); it is in (1-11) = (1,-1,1): 1 - 1 + 0 = 0.
    # In the plane (1-11), the direction perpendicular to [110] is (1,-1,1) x (1,1,0) = (-1,1,2).
    line = _bowed_line((1, 1, 0), (-1, 1, 2))
    np.testing.assert_array_equal(frame.line_direction(line), [1, 1, 0])
    np.testing.assert_array_equal(frame.habit_plane(line), [1, -1, 1])
    # The fcc glide case: a line along [1-10] in the (111) plane; (111) x (1-10) = (1, 1, -2).
    line = _bowed_line((1, -1, 0), (1, 1, -2))
    np.testing.assert_array_equal(frame.line_direction(line), [1, -1, 0])
    np.testing.assert_array_equal(frame.habit_plane(line), [1, 1, 1])


def test_cubic_by_hand_rotated_frames():
    # g = (010) along +x with zone [001]: b -> +x, c -> +z, a = b x c -> ... (0,1,0)x(0,0,1) is a, so a -> -y
    frame = CrystalFrame(0.4, 0.4, 0.4, 90, 90, 90, zone_axis=(0, 0, 1), g=(0, 1, 0), g_angle_deg=0.0,
                         pixel_size=0.1)
    np.testing.assert_allclose(frame.direction_in_image((1, 0, 0)), [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(frame.direction_in_image((0, 1, 0)), [1, 0, 0], atol=1e-12)
    # a = 0.4 nm = 4 pixels of 0.1 nm: the point (0, -4, 0) is at fractional (1, 0, 0)
    np.testing.assert_allclose(frame.to_fractional([[0.0, -4.0, 0.0]]), [[1, 0, 0]], atol=1e-12)
    # Tilt 30 degrees about g = +x (right-handed): c = +z goes to (0, -sin 30, cos 30)
    tilted = CrystalFrame(1, 1, 1, 90, 90, 90, zone_axis=(0, 0, 1), g=(1, 0, 0), tilt_from_zone_deg=30.0)
    np.testing.assert_allclose(tilted.direction_in_image((0, 0, 1)), [0, -0.5, np.sqrt(3) / 2], atol=1e-12)
    np.testing.assert_array_equal(tilted.line_direction(np.outer(np.arange(5.0), [0, -0.5, np.sqrt(3) / 2])),
                                  [0, 0, 1])
    # g along 90 degrees (image +y)
    frame = CrystalFrame(1, 1, 1, 90, 90, 90, zone_axis=(0, 0, 1), g=(1, 0, 0), g_angle_deg=90.0)
    np.testing.assert_allclose(frame.direction_in_image((1, 0, 0)), [0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("lattice", [(0.295, 0.295, 0.468, 90, 90, 120), (0.5, 0.6, 0.7, 80, 95, 105)])
def test_metric_tensors_agree_with_diffpy(lattice):
    frame = CrystalFrame(*lattice)
    ref = Lattice(*lattice)
    np.testing.assert_allclose(frame.metric, ref.metrics, atol=1e-12)
    np.testing.assert_allclose(frame.reciprocal_metric, ref.reciprocal().metrics, rtol=1e-10, atol=1e-10)
    # a_i . a*_j = delta_ij (no 2 pi)
    np.testing.assert_allclose(frame.direct.T @ frame.reciprocal, np.eye(3), atol=1e-12)


def test_generic_orientation_round_trip():
    # Hexagonal lattice, zone [2-1-10]-like direction [1,0,0] and g in the zone, tilted and rotated
    frame = CrystalFrame(0.295, 0.295, 0.468, 90, 90, 120, zone_axis=(1, 0, 0), g=(0, 0, 2),
                         g_angle_deg=37.0, tilt_from_zone_deg=12.0, pixel_size=0.05, origin=(10, 20, 5))
    assert frame.warnings == []
    # zone axis along the beam before the tilt: with no tilt it is exactly +z
    flat = CrystalFrame(0.295, 0.295, 0.468, 90, 90, 120, zone_axis=(1, 0, 0), g=(0, 0, 2), g_angle_deg=37.0)
    np.testing.assert_allclose(flat.direction_in_image((1, 0, 0)), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(flat.plane_normal_in_image((0, 0, 2)),
                               [np.cos(np.deg2rad(37)), np.sin(np.deg2rad(37)), 0], atol=1e-12)
    rng = np.random.default_rng(0)
    frac = rng.uniform(-20, 20, (50, 3))
    np.testing.assert_allclose(frame.to_fractional(frame.from_fractional(frac)), frac, atol=1e-9)
    # A line along [121] bowed towards [001]: it lies in the plane holding both
    d1 = frame.direction_in_image((1, 2, 1))
    d2 = frame.direction_in_image((0, 0, 1))
    line = 300 * np.outer(np.linspace(-1, 1, 40), d1) + np.outer(20 * (1 - np.linspace(-1, 1, 40) ** 2), d2)
    np.testing.assert_array_equal(frame.line_direction(line), [1, 2, 1])
    # the plane holding [121] and [001]: (hkl) with h + 2k + l = 0 and l = 0 -> (2,-1,0)
    np.testing.assert_array_equal(frame.habit_plane(line), [2, -1, 0])
    segs = frame.axes_for_display((0, 0, 0), 50.0)
    assert segs.shape == (3, 2, 3)
    np.testing.assert_allclose(np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1), 50.0)
    np.testing.assert_allclose(_unit(segs[2, 1]), d2, atol=1e-12)


def test_reduce_indices_and_errors():
    np.testing.assert_array_equal(reduce_indices([2.0, 2.02, 0.0]), [1, 1, 0])
    np.testing.assert_array_equal(reduce_indices([-0.5, -1.0, 0.0]), [1, 2, 0])
    far = reduce_indices([1.0, 0.123456, 0.0], max_index=3)
    assert far.dtype.kind == "f"
    frame = CrystalFrame(1, 1, 1, 90, 90, 90)
    with pytest.raises(InputError, match="straight line"):
        frame.habit_plane(np.outer(np.arange(10.0), [1, 1, 0]))
    with pytest.raises(InputError, match="parallel"):
        CrystalFrame(1, 1, 1, 90, 90, 90, zone_axis=(0, 0, 1), g=(0, 0, 2))
    with pytest.raises(InputError, match="angles"):
        CrystalFrame(1, 1, 1, 90, 90, 190)
    with pytest.raises(InputError, match="positive"):
        CrystalFrame(-1, 1, 1, 90, 90, 90)
    with pytest.raises(InputError, match="shape"):
        frame.to_fractional(np.zeros((4, 2)))
    off = CrystalFrame(1, 1, 1, 90, 90, 90, zone_axis=(0, 0, 1), g=(1, 0, 1))
    assert off.warnings and "out of the zone" in off.warnings[0]


@pytest.mark.parametrize("text, expected", [("1,-1,0", (1, -1, 0)), ("1 1 1", (1, 1, 1)), ("0;0;2", (0, 0, 2))])
def test_indices_typed_as_text(text, expected):
    from napari_stereo_tem.stereo.crystal_frame import parse_indices

    assert parse_indices(text, name="zone axis") == expected


@pytest.mark.parametrize("text", ["0,0,0", "1,1", "1.5,0,0", "a,b,c", ""])
def test_bad_indices_are_refused_by_name(text):
    from napari_stereo_tem.checks import InputError
    from napari_stereo_tem.stereo.crystal_frame import parse_indices

    with pytest.raises(InputError, match="zone axis"):
        parse_indices(text, name="zone axis")

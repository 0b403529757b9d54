"""The wide micrograph generator, its training stream, and detection on single images (scale, contrast, CLI)."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.stereo.detect import detect_lines
from napari_stereo_tem.stereo.detection import choose_settings
from napari_stereo_tem.synth.micrograph import MASK_IGNORE, make_micrograph
from napari_stereo_tem.training.detector import _targets
from napari_stereo_tem.training.detector_data import crop_batches, scene_plan


def _visible(seed_range, *, bright: bool):
    """The first micrograph of ``seed_range`` with many visible dislocation pixels of the wanted polarity."""
    for seed in seed_range:
        micro = make_micrograph(seed, shape=(192, 192))
        if micro.bright_lines == bright and (micro.mask == 1).sum() > 400:
            return micro
    raise AssertionError("no such micrograph in the range")


def test_micrograph_is_reproducible_and_labelled():
    a, b = make_micrograph(123, shape=(128, 160)), make_micrograph(123, shape=(128, 160))
    c = make_micrograph(124, shape=(128, 160))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == a.mask.shape == (128, 160)
    assert a.image.dtype == np.float32 and 0.0 <= a.image.min() and a.image.max() <= 1.0
    assert set(np.unique(a.mask)) <= {0, 1, 2, MASK_IGNORE}
    json.dumps(a.params)  # every drawn parameter can be recorded


@pytest.mark.parametrize("bright", [False, True])
def test_lines_have_the_drawn_polarity(bright):
    micro = _visible(range(5000, 5200), bright=bright)
    line = micro.mask == 1
    ring = ndimage.binary_dilation(line, iterations=5) & ~ndimage.binary_dilation(line, iterations=2) \
        & (micro.mask == 0)
    inside, around = micro.image[line].mean(), micro.image[ring].mean()
    assert (inside > around) if bright else (inside < around)


def test_generator_spans_widths_scenes_and_distractors():
    params = [make_micrograph(s, shape=(96, 96)).params for s in range(300, 360)]
    sigmas = [p["base_sigma"] for p in params]
    assert min(sigmas) < 1.0 and max(sigmas) > 3.0          # line widths from ~1 to ~10 px
    kinds = {g["kind"] for p in params for g in p["groups"]}
    assert {"pileup", "network", "meander", "loops", "segments"} <= kinds
    assert any(p["distractors"] for p in params)
    assert any("jpeg_quality" in p for p in params) and any(p.get("scan_jitter") for p in params)


def test_ignored_pixels_carry_no_loss():
    masks = np.array([[[0, 1, 2, MASK_IGNORE]]], np.uint8)
    targets, keep = _targets(masks, 2)
    assert targets.shape == (1, 2, 1, 4) and keep.shape == (1, 1, 1, 4)
    assert keep[0, 0, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert targets[0, 0, 0].tolist() == [0.0, 1.0, 0.0, 0.0] and targets[0, 1, 0].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_crop_stream_is_reproducible_and_resumable():
    first = crop_batches(seed=5, batch_size=3, crop=32, crops_per_scene=2, scene_size=64)
    batches = [next(first) for _ in range(3)]
    again = next(crop_batches(seed=5, batch_size=3, crop=32, crops_per_scene=2, scene_size=64))
    resumed = next(crop_batches(seed=5, batch_size=3, crop=32, crops_per_scene=2, scene_size=64, start_step=2))
    assert batches[0][0].shape == (3, 32, 32) and batches[0][1].dtype == np.uint8
    assert np.array_equal(again[0], batches[0][0])
    assert np.array_equal(resumed[0], batches[2][0]) and np.array_equal(resumed[1], batches[2][1])
    assert not np.array_equal(batches[0][0], batches[1][0])


def test_scene_plan_keeps_to_its_split_and_mix():
    from napari_stereo_tem.synth.seeds import TRAIN_SEEDS, VAL_SEEDS

    plans = [scene_plan(1, i, stereo_share=0.2) for i in range(400)]
    assert all(seed in TRAIN_SEEDS for seed, _ in plans)
    share = np.mean([kind == "stereo" for _, kind in plans])
    assert 0.12 < share < 0.28
    assert scene_plan(1, 0, stereo_share=0.0, split="val")[0] in VAL_SEEDS


@pytest.fixture(scope="module")
def detector():
    from napari_stereo_tem.models.store import load_detector

    return load_detector()


def test_given_settings_are_kept_and_bad_ones_refused(detector):
    image = make_micrograph(7, shape=(64, 64)).image
    settings = choose_settings(image, detector, contrast="dark_field", scale=0.5)
    assert (settings.contrast, settings.scale) == ("dark_field", 0.5)
    with pytest.raises(InputError, match="scale"):
        choose_settings(image, detector, scale=-1)
    with pytest.raises(InputError, match="contrast"):
        choose_settings(image, detector, contrast="phase")


def test_wide_lines_are_shrunk_for_the_detector(detector):
    """Lines of a sigma of 9 px are far wider than any the detector was trained on: auto shrinks the image.

    (The wide generator draws lines up to a sigma of 4.5 px; detector_v2 still finds lines of 6 px as
    they are, detector_v1 shrank them.)
    """
    from skimage.morphology import skeletonize

    yy, xx = np.mgrid[0:512, 0:512].astype(float)
    image = np.full((512, 512), 0.6)
    distance = np.full(image.shape, np.inf)
    for k, angle in enumerate(np.deg2rad([20, 75, 130, 160])):
        d = (xx - 100 - 90 * k) * np.cos(angle) + (yy - 256) * np.sin(angle)
        image *= 1 - 0.5 * np.exp(-0.5 * (d / 9.0) ** 2)
        distance = np.minimum(distance, np.abs(d))
    image += np.random.default_rng(0).normal(0, 0.02, image.shape)
    settings = choose_settings(image, detector)
    assert settings.scale < 1.0
    result = detect_lines(image, detector)
    assert result.settings["scale"] == settings.scale
    assert result.probability.shape[1:] == image.shape and result.labels.shape == image.shape
    centre = skeletonize(result.labels == 1)
    assert centre.sum() > 1000 and len(result.lines) >= 4
    # resized back to the image, the centrelines still lie on the lines' centres
    assert np.mean(distance[centre] <= 2.0) > 0.8


def record_lines(out):
    return json.loads((out / "detect.json").read_text())["images"][0]["n_lines"]


def test_detect_cli_writes_a_folder(tmp_path, sample_dir, capsys):
    from napari_stereo_tem.cli import main

    out = tmp_path / "detected"
    image = sample_dir / "stereo" / "left.tif"
    assert main(["detect", str(image), "--scale", "none", "--contrast", "bright", "-o", str(out)]) == 0
    assert "line branches" in capsys.readouterr().out
    labels = tifffile.imread(out / "left_labels.tif")
    prob = tifffile.imread(out / "left_probability.tif")
    truth = tifffile.imread(sample_dir / "stereo" / "mask_left.tif")
    assert labels.shape == truth.shape and prob.shape == (2, *truth.shape) and set(np.unique(labels)) <= {0, 1, 2}
    found = (labels == 1) & ndimage.binary_dilation(truth == 1, iterations=2)
    assert found.sum() > 0.5 * (labels == 1).sum()            # most detections lie on the true lines
    header = (out / "left_lines.csv").read_text().splitlines()[0]
    assert header == "line_id,x,y"
    geometry = (out / "left_geometry.csv").read_text().splitlines()
    assert geometry[0] == "line_id,n_points,length,chord,mean_curvature,max_curvature,neighbour_spacing"
    assert len(geometry) - 1 == record_lines(out) and all(float(row.split(",")[2]) > 0 for row in geometry[1:])
    record = json.loads((out / "detect.json").read_text())
    assert record["images"][0]["settings"]["scale"] == 1.0 and record["images"][0]["n_lines"] >= 1
    # an existing result is not replaced silently, and bad options name themselves
    assert main(["detect", str(image), "-o", str(out)]) == 1
    assert "already holds" in capsys.readouterr().err
    assert main(["detect", str(image), "--scale", "big", "-o", str(tmp_path / "x")]) == 1
    assert "--scale" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "y")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("dark_field", [False, True])
@pytest.mark.parametrize("width_scale, contrast_scale", [(1.5, 1.0), (1.0, 0.5)], ids=["wide", "faint"])
def test_fringed_lines_are_read_in_their_own_polarity(detector, dark_field, width_scale, contrast_scale):
    """Lines with a faint fringe on a bend contour (validation scene 8178779), 1.5x wider or half as dark.

    Seen the wrong way round the fringes are thin lines, two per line, which the detector finds
    more of at full size than the lines themselves; the lines' depth below the background tells them
    apart, and the detector finds the lines themselves once the image is shrunk. Before, bright field
    was read as dark field here and the image kept as it is.
    """
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.fringed import fringed_views

    sample = make_stereo_pair(8178779, shape=(384, 384), stereo_angle_deg=8.0)
    image = fringed_views(sample, 8.0, seed=8001, width_scale=width_scale, contrast_scale=contrast_scale)[0]
    if dark_field:
        image = image.max() - image
    settings = choose_settings(image, detector)
    assert settings.contrast == ("dark_field" if dark_field else "bright_field")
    assert settings.scale < 1.0
    result = detect_lines(image, detector)
    # the class-1 pixels lie on the lines, not beside them on a fringe
    truth = sample.mask_left == 1
    near = ndimage.binary_dilation(truth, iterations=4)
    found = result.labels == 1
    assert found.sum() > 300 and np.mean(near[found]) > 0.9


def test_the_black_corners_of_a_rotated_image_are_no_lines(detector):
    """An aligned or rotated micrograph has flat black corners: their edges are not drawn as dislocations."""
    import cv2

    from napari_stereo_tem.stereo.alignment.masks import frame_mask

    micro = _visible(range(5000, 5200), bright=False)
    image = (255 * (micro.image - micro.image.min()) / np.ptp(micro.image)).astype(np.float32)
    turn = cv2.getRotationMatrix2D((95.5, 95.5), 20.0, 1.0)
    turned = cv2.warpAffine(image, turn, (192, 192), flags=cv2.INTER_LINEAR, borderValue=0)
    field = cv2.warpAffine(np.ones((192, 192), np.float32), turn, (192, 192), borderValue=0) > 0.99
    frame = frame_mask(turned)
    assert frame[~field].mean() > 0.9 and frame[cv2.erode(field.astype(np.uint8), np.ones((15, 15))) > 0].sum() == 0
    result = detect_lines(turned, detector, scale=None)
    assert result.settings["frame_share"] == pytest.approx(frame.mean(), abs=1e-4)  # recorded in detect.json
    along_edge = (cv2.dilate((~field).astype(np.uint8), np.ones((7, 7))) > 0) & field
    truth_there = ndimage.binary_dilation(cv2.warpAffine((micro.mask == 1).astype(np.uint8), turn, (192, 192),
                                                         flags=cv2.INTER_NEAREST) > 0, iterations=3)
    assert (result.labels[~field] == 1).sum() <= 0.005 * (~field).sum()
    assert ((result.labels == 1) & along_edge & ~truth_there).sum() < 0.05 * along_edge.sum()
    # the frame's fill does not touch the field: the mask of a micrograph without a frame is empty
    assert not frame_mask(image).any()


def test_a_large_camera_image_of_wide_lines_is_shrunk_enough():
    """A 3072 px image whose lines are eight times as wide as the detector's (a 4k camera at high
    magnification): the resize search reaches the factor it needs (below 0.25) and the lines are found.
    Before, the smallest factor was 0.25 and the ridge width was measured on a central crop too small
    to hold the lines: the image was detected as it is and nothing was found."""
    import cv2

    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.synth import make_stereo_pair

    sample = make_stereo_pair(4321, shape=(384, 384))
    big = cv2.resize(sample.left, (3072, 3072), interpolation=cv2.INTER_CUBIC)
    truth = cv2.resize((sample.mask_left == 1).astype(np.uint8), (3072, 3072), interpolation=cv2.INTER_NEAREST)
    result = detect_lines(big, load_detector())
    assert result.settings["scale"] <= 0.18
    found = result.labels == 1
    near_truth = ndimage.binary_dilation(truth.astype(bool), iterations=12)
    assert found.sum() > 0.2 * truth.sum()  # the lines are drawn ...
    assert (found & near_truth).sum() > 0.9 * found.sum()  # ... where they are


def test_the_edge_of_a_hole_in_the_foil_is_no_line(detector):
    """Vacuum seen through a hole (brighter than any specimen, featureless but for shot noise): its edge
    was drawn as a dislocation along its whole length; now the hole is filled like a frame. Views
    without a hole, however bright their thin areas, have no vacuum."""
    import cv2

    from napari_stereo_tem.stereo.alignment.masks import vacuum_mask
    from napari_stereo_tem.synth import make_stereo_pair

    sample = make_stereo_pair(4321, shape=(384, 384))
    image = sample.left.astype(np.float32)
    yy, xx = np.mgrid[:384, :384]
    hole = (xx - 384) ** 2 + (yy + 40) ** 2 < 190 ** 2
    level = float(np.percentile(image, 99.9)) * 1.15
    noisy = np.random.default_rng(1).poisson(level * 400, hole.sum()) / 400.0
    holed = image.copy()
    holed[hole] = noisy
    vacuum = vacuum_mask(holed)
    assert vacuum[hole].mean() > 0.99 and vacuum[~hole].mean() < 0.05
    edge = (cv2.dilate(hole.astype(np.uint8), np.ones((9, 9))) > 0) & ~hole
    truth_there = ndimage.binary_dilation(sample.mask_left == 1, iterations=3)
    result = detect_lines(holed, detector)
    assert ((result.labels == 1) & edge & ~truth_there).sum() < 0.05 * edge.sum()
    assert result.settings["frame_share"] >= hole.mean()
    # the lines away from the hole are still found
    away = ~ndimage.binary_dilation(hole, iterations=20) & (sample.mask_left == 1)
    assert ((result.labels == 1) & away).sum() > 0.5 * away.sum()
    for seed in range(4300, 4310):  # stereo views, bright thin areas between bend contours: no vacuum
        assert not vacuum_mask(make_stereo_pair(seed, shape=(256, 256)).left).any()


def test_a_data_bar_and_side_frames_do_not_move_the_resize_decision():
    """A micrograph exported with black side frames and a title bar (as video grabs and many exports are):
    the lines drawn on the frame's fill counted as line density while its area did not, which moved the
    automatic resize factor (0.5 -> 0.35 on this image, 1.9 times the line pixels elsewhere); and the
    counters of the title's letters were drawn as lines."""
    from pathlib import Path

    import cv2

    from napari_stereo_tem.models.store import load_detector
    from napari_stereo_tem.synth.misalign import burn_overlay

    real = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "tem_images"
    path = real / "0501_300kx_1nm_clhaadf3_0006.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    low, high = np.percentile(image, [0.5, 99.5])
    framed, overlay = burn_overlay(image, text="HAADF 300kx 200 kV 2026-11-30 12:04", seed=1, levels=(low, high),
                                   scale_bar=False)
    model = load_detector()
    plain, with_frame = choose_settings(image, model), choose_settings(framed, model)
    assert with_frame.frame_share > 0.1
    assert with_frame.scale == plain.scale == 0.5
    # the title's letters go with the bar they are written on (1062 px drawn on the overlay before)
    assert ((detect_lines(framed, model, flips=1).labels == 1) & overlay).sum() < 400


def test_a_burned_in_scale_bar_and_its_label_are_no_lines():
    """A white scale bar with its label inside the field: its edges were drawn as a dislocation (1030 px
    within 6 px of it on this image); now the bar and the label are found and filled like a frame. None
    is found in the real micrographs themselves."""
    from pathlib import Path

    import cv2

    from napari_stereo_tem.stereo.alignment.masks import frame_mask, scale_bar_mask
    from napari_stereo_tem.synth.misalign import burn_overlay

    real = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "tem_images"
    images = {p.stem: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32) for p in sorted(real.glob("*.jpg"))}
    assert len(images) == 5 and not any(scale_bar_mask(image).any() for image in images.values())
    image = images["map1_70kx"]
    low, high = np.percentile(image, [0.5, 99.5])
    burned, overlay = burn_overlay(image, text="TEM 70kx", seed=2, levels=(low, high))
    # the scale bar and its label (the title bar and the text on it are a frame)
    bar = overlay & ~ndimage.binary_dilation(frame_mask(burned), iterations=15)
    found = scale_bar_mask(burned)
    assert found[ndimage.binary_erosion(bar, iterations=1)].mean() > 0.95
    assert (found & ~ndimage.binary_dilation(bar, iterations=4)).sum() < 0.5 * bar.sum()  # little beside it
    result = detect_lines(burned, flips=1)
    assert ((result.labels == 1) & ndimage.binary_dilation(bar, iterations=6)).sum() < 50

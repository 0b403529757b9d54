"""Hand-annotated centrelines on real micrographs (tests/data/real_tem) and their scoring."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.evaluation.real_annotations import load_annotation, rasterise, score_centrelines
from napari_stereo_tem.evaluation.metrics import centreline_scores

DATA = Path(__file__).parent / "data" / "real_tem"
FILES = sorted(DATA.glob("*.json"))
LICENCE = "LICENSE-uw-cmg-Multitype-Defect-Detection"


def _image_shape(realdata_dir: Path, name: str) -> tuple[int, int]:
    import cv2

    image = cv2.imread(str(realdata_dir / "tem_images" / name), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"cannot read {name} from {realdata_dir / 'tem_images'}"
    return image.shape


def test_at_least_three_images_annotated_with_the_licence_beside_them():
    assert len(FILES) >= 3
    assert (DATA / LICENCE).is_file()
    assert "MIT License" in (DATA / LICENCE).read_text()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_annotation_loads_and_lies_inside_its_image(path, realdata_dir):
    annotation = load_annotation(path)
    assert annotation.image == f"{path.stem}.jpg"
    assert annotation.source == "../shared/realdata/tem_images"
    assert (realdata_dir / "tem_images" / annotation.image).is_file()
    assert 15 <= len(annotation.dislocations) <= 80  # dalong1 holds few, large loops
    assert annotation.licence_note and annotation.annotator_note
    rows, cols = _image_shape(realdata_dir, annotation.image)
    for line in annotation.dislocations:
        assert line.min() >= 0 and line[:, 0].max() <= cols - 1 and line[:, 1].max() <= rows - 1
    true, ignore = rasterise(annotation, (rows, cols))
    assert true.sum() > 1000  # many lines, each a connected 1-px path
    assert 0 < ignore.mean() < 0.5  # the ignore mask is a minority of the image


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_perfect_prediction_scores_one_and_a_shifted_one_much_lower(path):
    annotation = load_annotation(path)
    true, _ = rasterise(annotation, (1024, 1024))
    perfect = score_centrelines(true, annotation)
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1.0
    shifted = np.zeros_like(true)
    shifted[:, 5:] = true[:, :-5]
    score = score_centrelines(shifted, annotation)
    assert score["f1"] < 0.5 * perfect["f1"]


def test_predictions_inside_the_ignore_mask_do_not_lower_precision():
    annotation = load_annotation(FILES[0])
    true, ignore = rasterise(annotation, (1024, 1024))
    inside = ignore & ~true
    rows, cols = np.nonzero(inside)
    assert len(rows) > 500
    noisy = true.copy()
    noisy[rows[::7], cols[::7]] = True  # scattered false detections, all inside ignore regions
    scored = score_centrelines(noisy, annotation)
    assert scored["precision"] == 1.0 and scored["n_ignored"] > 0
    # as many false detections away from every line and ignore region are counted
    from scipy.ndimage import distance_transform_edt

    far = distance_transform_edt(~(true | ignore)) > 5
    r2, c2 = np.nonzero(far)
    wrong = true.copy()
    wrong[r2[::max(1, len(r2) // len(rows[::7]))], c2[::max(1, len(r2) // len(rows[::7]))]] = True
    assert score_centrelines(wrong, annotation)["precision"] < 0.9


def test_centreline_scores_ignore_is_backwards_compatible():
    true = np.zeros((40, 40), bool)
    true[20, 5:35] = True
    pred = true.copy()
    pred[5, 5:35] = True  # a wrong line
    plain = centreline_scores(pred, true)
    assert plain == centreline_scores(pred, true, ignore=None)
    assert plain["precision"] == pytest.approx(0.5, abs=0.05)
    ignore = np.zeros_like(true)
    ignore[3:8, :] = True
    masked = centreline_scores(pred, true, ignore=ignore)
    assert masked["precision"] == 1.0 and masked["recall"] == 1.0
    with pytest.raises(InputError, match="ignore mask"):
        centreline_scores(pred, true, ignore=ignore[:-1])


def test_malformed_files_are_named_in_the_error(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"image": "x.jpg", "dislocations": [[[1, 2], [3, 4]],')
    with pytest.raises(InputError, match="broken.json.*not valid JSON"):
        load_annotation(bad)
    short = tmp_path / "short_line.json"
    short.write_text(json.dumps({"image": "x.jpg", "source": "s", "dislocations": [[[1, 2]]], "ignore": []}))
    with pytest.raises(InputError, match=r"short_line.json.*dislocations\[0\]"):
        load_annotation(short)
    no_width = tmp_path / "no_width.json"
    no_width.write_text(json.dumps({"image": "x.jpg", "source": "s", "dislocations": [],
                                    "ignore": [{"polyline": [[0, 0], [5, 5]]}]}))
    with pytest.raises(InputError, match=r"no_width.json.*ignore\[0\].*width"):
        load_annotation(no_width)


def test_points_outside_the_image_are_refused(tmp_path):
    path = tmp_path / "big.json"
    shutil.copy(FILES[0], path)
    annotation = load_annotation(path)
    with pytest.raises(InputError, match="big.json.*leaves the 512x512 image"):
        rasterise(annotation, (512, 512))

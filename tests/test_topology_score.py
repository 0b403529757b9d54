"""Topological score of segmentations (thesis chapter 5) and the ranking of virtual detectors."""

import json

import numpy as np
import pytest
from skimage.draw import circle_perimeter, line

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.cli import main
from napari_stereo_tem.evaluation.topology import (consensus_mask, diagram_distance, filtration_images,
                                                   persistence_diagrams, rank_by_topology, topological_score)
from napari_stereo_tem.progress import Cancelled, drive


def _lines(shape=(64, 64)):
    mask = np.zeros(shape, bool)
    for r0, c0, r1, c1 in ((10, 5, 12, 58), (5, 30, 55, 34), (45, 8, 50, 25)):
        rr, cc = line(r0, c0, r1, c1)
        mask[rr, cc] = True
    return mask


def test_persistence_counts_components_and_loops():
    mask = np.zeros((40, 40), bool)
    rr, cc = circle_perimeter(20, 20, 10)
    mask[rr, cc] = True
    mask[3:5, 3:5] = True
    h0, h1 = persistence_diagrams(filtration_images(mask, filtrations=("height",))["height_0"])
    # two components (the ring, the square): the older one lives to the top of the filtration
    assert len(h0) == 2 and h0[:, 1].max() == 1.0
    assert len(h1) == 1  # the ring's loop, filled when the background enters at 1
    dh0, dh1 = persistence_diagrams(filtration_images(mask, filtrations=("dilation",))["dilation"])
    # growing discs: the square joins the ring, the ring's hole closes at about its radius (10 of 16 px)
    assert len(dh0) == 2 and dh0[:, 1].min() < 0.6
    persistence = np.sort(dh1[:, 1] - dh1[:, 0])
    assert 0.5 < persistence[-1] < 0.75 and (len(dh1) == 1 or persistence[-2] < 0.1)


def test_diagram_distance_is_a_wasserstein_distance():
    a = np.array([[0.0, 1.0], [0.2, 0.4]])
    assert diagram_distance(a, a) == 0.0
    # a point alone goes to the diagonal: half its persistence (L-infinity)
    assert diagram_distance(a, a[:1]) == pytest.approx(0.1)
    assert diagram_distance(np.zeros((0, 2)), a) == pytest.approx(0.5 + 0.1)
    b = np.array([[0.0, 0.9], [0.25, 0.4]])
    assert diagram_distance(a, b) == pytest.approx(0.1 + 0.05)
    assert diagram_distance(a, b) == pytest.approx(diagram_distance(b, a))


def test_score_orders_damage():
    truth = _lines()
    broken = truth.copy()
    broken[10:14, 20:24] = False  # one gap
    noisy = truth.copy()
    noisy[np.random.default_rng(0).random(truth.shape) < 0.02] = True
    same = topological_score(truth, truth, weights="equal")
    assert same.distance == 0.0 and all(v == 0 for v in same.terms.values())
    for weights in (None, "equal"):
        d_broken = topological_score(broken, truth, weights=weights).distance
        d_noisy = topological_score(noisy, truth, weights=weights).distance
        d_empty = topological_score(np.zeros_like(truth), truth, weights=weights).distance
        assert 0 < d_broken < d_noisy <= 1.0
        assert 0 < d_broken < d_empty <= 1.0
    # the default weighs the dilation filtration only; every term is still reported
    default = topological_score(broken, truth)
    assert default.distance == pytest.approx(np.mean([default.terms["dilation H0"], default.terms["dilation H1"]]))
    assert len(default.terms) == 30
    assert {"dilation H0", "density H1", "height_3 H0", "radial_8 H1"} <= set(same.terms)
    # weights per family
    radial = topological_score(broken, truth, weights={"dilation": 0, "density": 0, "height": 0, "radial": 2})
    assert radial.distance == pytest.approx(np.mean([v for k, v in radial.terms.items() if k.startswith("radial")]))


def test_consensus_and_ranking():
    truth = _lines()
    rng = np.random.default_rng(1)
    candidates = []
    for noise in (0.0, 0.01, 0.05):
        mask = truth.copy()
        mask[rng.random(truth.shape) < noise] = True
        candidates.append(mask)
    shifted = np.roll(truth, 1, axis=1)
    ref = consensus_mask([*candidates, shifted])
    from scipy.ndimage import binary_dilation

    stray = ref & ~binary_dilation(truth)  # beyond the tolerance of the true lines
    noise = (candidates[2] & ~truth).sum()
    assert stray.sum() <= 0.15 * noise  # most of the noise does not survive the vote
    assert (truth & ~ref).sum() <= 0.02 * truth.sum()
    ranked = rank_by_topology(candidates[::-1], truth, names=["noisy", "some", "clean"])
    assert [row["name"] for row in ranked] == ["clean", "some", "noisy"]
    assert [row["rank"] for row in ranked] == [1, 2, 3]
    # against their consensus (no label): the noisiest still ranks last
    assert rank_by_topology(candidates[::-1], names=["noisy", "some", "clean"])[-1]["name"] == "noisy"
    with pytest.raises(InputError, match="at least two"):
        consensus_mask([truth])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4)), "too small"),
    (np.zeros((2, 20, 20)), "2D mask"),
    (np.full((20, 20), np.nan), "NaN"),
])
def test_bad_input(bad, message):
    with pytest.raises(InputError, match=message):
        topological_score(bad, _lines())
    with pytest.raises(InputError, match="reference segmentation is empty"):
        topological_score(_lines(), np.zeros((64, 64)))
    with pytest.raises(InputError, match="differ in shape"):
        topological_score(_lines(), _lines((70, 70)))
    with pytest.raises(InputError, match="unknown filtration"):
        filtration_images(_lines(), filtrations=("erosion",))
    with pytest.raises(InputError, match="no filtration to score"):
        topological_score(_lines(), _lines(), weights=dict.fromkeys(("dilation", "density", "height", "radial"), 0))
    with pytest.raises(InputError, match="not negative"):
        topological_score(_lines(), _lines(), weights={"dilation": -1})


@pytest.fixture(scope="module")
def line_scan(tmp_path_factory):
    from napari_stereo_tem.synth import simulate_4dstem

    path = tmp_path_factory.mktemp("scan") / "lines.npy"
    sample = simulate_4dstem(seed=9_320_000, scan_shape=(64, 64), detector_shape=(24, 24), disc_radius_px=8.0,
                             dose=10.0, path=path)
    return path, sample


def test_rank_detectors_prefers_signal_over_noise(line_scan):
    from napari_stereo_tem.fourdstem.ranking import rank_detectors, sweep_discs

    _, sample = line_scan
    cy, cx = sample.centre
    ranking = rank_detectors(sample.data, sweep_discs((cy, cx + 3.0), [0.6, 2.0, 4.0]))
    assert ranking.reference_kind == "consensus" and ranking.labels.shape == (3, 64, 64)
    # a one-pixel disc at 3 e/px is mostly noise: it ranks last
    assert ranking.ranking[-1]["disc"]["radius"] == 0.6
    assert ranking.best.radius > 0.6
    assert "use: r" in ranking.summary() and "note:" not in ranking.summary()  # one centre: no parallax note
    spread = rank_detectors(sample.data, [(cy, cx + 3.0, 2.0), (cy, cx - 3.0, 2.0)])
    assert "parallax" in spread.summary()
    with pytest.raises(InputError, match="reference label has shape"):
        rank_detectors(sample.data, sweep_discs((cy, cx), [2, 3]), reference=np.ones((10, 10)))
    # cancel: stops after the first report
    from napari_stereo_tem.fourdstem.ranking import iter_rank_detectors

    seen = []
    with pytest.raises(Cancelled):
        drive(iter_rank_detectors(sample.data, sweep_discs((cy, cx), [2, 3])), seen.append,
              should_stop=lambda: bool(seen))


def test_cli_rank_detectors(line_scan, tmp_path, capsys):
    path, sample = line_scan
    out = tmp_path / "rank"
    cy, cx = sample.centre
    code = main(["rank-detectors", str(path), "--sweep", f"{cy},{cx + 3}", "--radii", "1,2,4", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "use: r" in printed
    rows = (out / "ranking.csv").read_text().splitlines()
    assert rows[0] == "rank,name,cy,cx,radius,distance" and len(rows) == 4
    distances = [float(r.split(",")[-1]) for r in rows[1:]]
    assert distances == sorted(distances)
    record = json.loads((out / "ranking.json").read_text())
    assert record["reference"] == "consensus" and len(record["ranking"]) == 3
    # a label of the scan as the reference (here the detector's own labels of the largest disc)
    import tifffile

    label = tmp_path / "label.tif"
    tifffile.imwrite(label, (tifffile.imread(out / "labels.tif")[2] == 1).astype(np.uint8))
    out2 = tmp_path / "rank_label"
    assert main(["rank-detectors", str(path), "--sweep", f"{cy},{cx + 3}", "--radii", "1,2,4", "--label", str(label),
                 "--weights", "dilation=1,radial=0.5", "-o", str(out2)]) == 0
    record = json.loads((out2 / "ranking.json").read_text())
    assert record["reference"] == "label" and record["weights"] == "dilation=1,radial=0.5"
    assert record["ranking"][0]["name"] == "r 4 at ({:.1f}, {:.1f})".format(cy, cx + 3)  # equal to the label
    assert record["ranking"][0]["distance"] == 0.0
    capsys.readouterr()
    assert main(["rank-detectors", str(path), "--sweep", "3,3", "--weights", "erosion=1", "-o",
                 str(tmp_path / "x")]) == 1
    assert "--weights" in capsys.readouterr().err
    assert main(["rank-detectors", str(path), "-o", str(tmp_path / "x")]) == 1
    assert "give the candidates" in capsys.readouterr().err
    assert main(["rank-detectors", str(path), "--disc", "3,3,2", "-o", str(tmp_path / "x")]) == 1
    assert "at least two" in capsys.readouterr().err

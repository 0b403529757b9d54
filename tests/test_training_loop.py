"""The one training loop: best model by validation, checkpoint on cancel, exact resume, refusals."""

import numpy as np
import pytest
import torch

from napari_stereo_tem.checks import InputError
from napari_stereo_tem.progress import Cancelled, drive
from napari_stereo_tem.training.loop import Trainer


def _problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    target = torch.tensor([[1.0], [-2.0], [0.5]])

    def batch_loss(step, rng):
        x = torch.from_numpy(rng.normal(size=(16, 3)).astype(np.float32))
        return ((model(x) - x @ target) ** 2).mean(), {"scale": 1.0}
    return model, batch_loss


def test_loss_falls_best_is_kept_and_progress_carries_the_score(tmp_path):
    model, batch_loss = _problem()
    trainer = Trainer(model, steps=60, lr=0.05, seed=1, checkpoint=tmp_path / "run.ckpt.pt")
    scores = iter([3.0, 1.0, 2.0])
    best = []
    reports = []
    result = drive(trainer.run(batch_loss, validate=lambda: {"err": next(scores)}, score="err", maximise=False,
                               val_every=20, on_best=lambda record: best.append(record["step"])), reports.append)
    assert [h["step"] for h in result["history"]] == [20, 40, 60]
    assert best == [20, 40] and result["best"] == 1.0
    assert len(result["losses"]) == 60 and np.mean(result["losses"][-10:]) < 0.2 * np.mean(result["losses"][:5])
    assert reports[-1].info["err"] == 2.0 and reports[-1].info["scale"] == 1.0 and reports[-1].done == 60
    assert torch.load(tmp_path / "run.ckpt.pt", weights_only=True)["step"] == 60


def test_cancel_keeps_the_state_and_resume_ends_where_the_full_run_ends(tmp_path):
    model, batch_loss = _problem()
    full = drive(Trainer(model, steps=30, lr=0.05, seed=2, checkpoint=tmp_path / "full.ckpt.pt").run(batch_loss))
    full_weights = {k: v.clone() for k, v in model.state_dict().items()}

    model, batch_loss = _problem()
    seen = []
    with pytest.raises(Cancelled):
        drive(Trainer(model, steps=30, lr=0.05, seed=2, checkpoint=tmp_path / "cut.ckpt.pt").run(batch_loss),
              seen.append, lambda: bool(seen) and seen[-1].done == 13)
    state = torch.load(tmp_path / "cut.ckpt.pt", weights_only=True)
    assert state["step"] == 13 and len(state["losses"]) == 13  # saved on cancel, no checkpoint_every needed

    model, batch_loss = _problem(seed=99)  # other initial weights: the checkpoint must replace them
    trainer = Trainer(model, steps=30, lr=0.05, seed=2, checkpoint=tmp_path / "cut.ckpt.pt",
                      resume=tmp_path / "cut.ckpt.pt")
    assert trainer.start == 13
    resumed = drive(trainer.run(batch_loss))
    assert resumed["losses"] == pytest.approx(full["losses"], rel=1e-5)
    for key, value in model.state_dict().items():
        assert torch.allclose(value, full_weights[key], atol=1e-6), key


def test_a_checkpoint_of_another_run_and_a_diverging_loss_are_refused(tmp_path):
    model, batch_loss = _problem()
    drive(Trainer(model, steps=3, lr=0.05, seed=0, checkpoint=tmp_path / "a.ckpt.pt").run(
        batch_loss, checkpoint_every=1, state={"version": "a"}))
    with pytest.raises(InputError, match="another run"):
        Trainer(model, steps=3, lr=0.05, seed=0, checkpoint=tmp_path / "b.ckpt.pt", resume=tmp_path / "a.ckpt.pt",
                expect={"version": "b"})
    with pytest.raises(InputError, match="nan"):
        drive(Trainer(model, steps=3, lr=0.05, seed=0, checkpoint=tmp_path / "c.ckpt.pt").run(
            lambda step, rng: model(torch.ones(1, 3)).sum() * float("nan")))

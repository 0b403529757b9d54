"""The one training loop of every network: steps, validation, best model, checkpoints, resume, cancel.

The detector (:mod:`.detector`), the matcher (:mod:`.matcher`) and fine-tuning
(:mod:`.finetune`) differ only in their data, their batch loss and what they
save; the loop is this one::

    trainer = Trainer(model, steps=2400, lr=2e-3, seed=1, checkpoint="run.ckpt.pt", resume=None)
    # ... fill a scene pool for steps trainer.start onwards ...
    result = yield from trainer.run(batch_loss, validate=validate, val_every=200, on_best=save)

- a step: ``batch_loss(step, rng)`` with ``rng = default_rng([seed, step])`` (so a
  step is reproducible from the run's seed alone and a resumed run is exact), then
  :func:`~.schedule.optimise` (AdamW, gradient norm clipped at
  :data:`GRAD_CLIP_NORM`, warm-up + cosine schedule);
- validation every ``val_every`` steps, at the end and when ``time_limit`` runs out;
  ``on_best(record)`` is called when the score improves (the caller saves weights);
- a checkpoint (model, optimiser, schedule, step, losses, history) at every
  validation, every ``checkpoint_every`` steps, and when the run is cancelled
  (the generator closed between two steps) or fails;
- one :class:`~napari_stereo_tem.progress.Progress` per step, ``info`` holding
  ``loss`` (this step), ``loss_avg`` (moving average), ``step``, the last
  validation score and the parts of the loss.

:data:`RECIPE` names what every run shares; trainers record it in the weights' metadata.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .schedule import GRAD_CLIP_NORM, optimise, read_checkpoint, warmup_cosine, write_checkpoint

__all__ = ["Trainer", "RECIPE", "GRAD_CLIP_NORM"]

#: What every training run shares, recorded in the metadata of the weights it writes.
RECIPE = {"loop": "training.loop.Trainer", "optimiser": "AdamW (weight decay 1e-4)",
          "grad_clip_norm": GRAD_CLIP_NORM, "step_rng": "numpy default_rng([seed, step])",
          "scene_seeds": "synth.seeds.draw_seeds (distinct seeds of the split)"}


class Trainer:
    """Optimiser, schedule and resumable state of one run; :meth:`run` is the loop.

    Parameters
    ----------
    model : torch.nn.Module
        On its device; only parameters with ``requires_grad`` are trained.
    steps : int
        Optimiser steps of the whole run (a resumed run counts from the start).
    lr : float
        Peak learning rate.
    seed : int
        Seeds each step's random generator.
    checkpoint : str or Path
        Where the resumable state is written.
    resume : str or Path, optional
        A checkpoint to continue from.
    schedule : dict, optional
        Keyword arguments of :func:`~.schedule.warmup_cosine` (``max_warmup``, ``floor``).
    expect : dict, optional
        Values a checkpoint must hold to be resumed here (e.g. ``{"version": ...}``).
    """

    def __init__(self, model, *, steps: int, lr: float, seed: int, checkpoint, resume=None,
                 schedule: dict | None = None, expect: dict | None = None):
        self.model = model
        self.steps = int(steps)
        self.seed = int(seed)
        self.checkpoint = Path(checkpoint)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimiser = torch.optim.AdamW(self.params, lr=lr, weight_decay=1e-4)
        self.schedule = warmup_cosine(self.optimiser, self.steps, **(schedule or {}))
        self.start, self.best, self.history, self.losses, self.wall_before = 0, None, [], [], 0.0
        if resume is not None:
            state = read_checkpoint(resume)
            for key, value in (expect or {}).items():
                if state.get(key) != value:
                    raise InputError(f"checkpoint {resume} belongs to another run ({key} {state.get(key)!r}, "
                                     f"not {value!r}); delete it or start without resume")
            model.load_state_dict(state["model"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.schedule.load_state_dict(state["schedule"])
            self.start = int(state["step"])
            # checkpoints written before the loop was shared name the best score after the metric
            best = state.get("best", state.get("best_val_f1", state.get("best_epe")))
            self.best = None if best is None else float(best)
            self.history = list(state.get("history", []))
            self.losses = [float(v) for v in state.get("losses", [])]
            self.wall_before = float(state.get("wall_s", 0.0))
        self.done = self.start

    def _save(self, wall: float, state: dict) -> None:
        write_checkpoint(self.checkpoint, self.model, self.optimiser, self.schedule, step=self.done,
                         best=self.best, history=self.history, losses=self.losses, wall_s=wall, **state)

    def run(
        self,
        batch_loss: Callable[[int, np.random.Generator], torch.Tensor | tuple[torch.Tensor, dict]],
        *,
        validate: Callable[[], dict] | None = None,
        score: str = "score",
        maximise: bool = True,
        val_every: int | None = None,
        on_best: Callable[[dict], None] | None = None,
        after_step: Callable[[int], None] | None = None,
        checkpoint_every: int | None = None,
        time_limit: float | None = None,
        stage: str = "train",
        n_threads: int | None = None,
        state: dict | None = None,
    ) -> ProgressGenerator[dict]:
        """Train to ``steps``; a progress generator (close it to cancel: the state is kept).

        Parameters
        ----------
        batch_loss : callable
            ``(step, rng) -> loss`` or ``(loss, parts)`` (``parts``: floats shown in the progress).
        validate : callable, optional
            ``() -> dict`` of metrics, one of them ``score``; without it there is no
            validation and no best model (the caller saves the final one).
        maximise : bool
            Whether a higher ``score`` is better.
        val_every : int, optional
            Steps between validations (default: only at the end).
        on_best : callable, optional
            Called with the validation record (``step``, ``loss``, ``wall_s`` and the
            metrics) when the score improves.
        after_step : callable, optional
            Called with the step index after its optimiser step (e.g. to refresh a scene pool).
        checkpoint_every : int, optional
            Steps between checkpoints besides those at validations.
        time_limit : float, optional
            Seconds of this call after which the run validates, saves and stops.
        n_threads : int, optional
            Torch CPU threads during the run (restored after).
        state : dict, optional
            Extra values written into every checkpoint.

        Returns
        -------
        dict
            ``best`` (score, ``None`` without validation), ``history``, ``losses``
            (every step), ``steps`` (reached), ``wall_s``, ``checkpoint``.
        """
        state = dict(state or {})
        t_start = time.perf_counter()
        ema = float(np.mean(self.losses[-10:])) if self.losses else None
        last = {score: self.history[-1][score]} if self.history and score in self.history[-1] else {}
        saved_at = self.done
        previous_threads = torch.get_num_threads()
        if n_threads:
            torch.set_num_threads(int(n_threads))

        def wall() -> float:
            return self.wall_before + time.perf_counter() - t_start

        try:
            while self.done < self.steps:
                step = self.done
                self.model.train()
                out = batch_loss(step, np.random.default_rng([self.seed, step]))
                loss, parts = out if isinstance(out, tuple) else (out, {})
                value = optimise(loss, self.optimiser, self.schedule, self.params)
                if not math.isfinite(value):
                    raise InputError(f"the training loss became {value} at step {step + 1}; lower the "
                                             "learning rate (the last checkpoint is kept)")
                self.losses.append(value)
                ema = value if ema is None else 0.95 * ema + 0.05 * value
                if after_step is not None:
                    after_step(step)
                self.done = step + 1
                out_of_time = time_limit is not None and time.perf_counter() - t_start > time_limit
                validating = validate is not None and (
                    (val_every and self.done % val_every == 0) or self.done == self.steps or out_of_time)
                if validating:
                    metrics = validate()
                    record = {"step": self.done, "loss": float(ema), "wall_s": wall(), **metrics}
                    self.history.append(record)
                    last = {score: float(metrics[score])}
                    value_now = float(metrics[score])
                    if self.best is None or (value_now > self.best if maximise else value_now < self.best):
                        self.best = value_now
                        if on_best is not None:
                            on_best(record)
                if validating or (checkpoint_every and self.done % checkpoint_every == 0 and self.done < self.steps):
                    self._save(wall(), state)
                    saved_at = self.done
                yield Progress(self.done, self.steps, stage, {"loss": value, "loss_avg": float(ema), "step": self.done,
                                                              **last, **{k: float(v) for k, v in parts.items()}})
                if out_of_time:
                    break
        finally:
            torch.set_num_threads(previous_threads)
            if saved_at != self.done and self.done < self.steps:  # cancelled or failed: keep what was learned
                self._save(wall(), state)
        return {"best": self.best, "history": self.history, "losses": self.losses, "steps": self.done,
                "wall_s": wall(), "checkpoint": str(self.checkpoint)}

"""Pieces every training loop shares: the learning-rate schedule, one optimiser step, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checks import InputError

__all__ = ["warmup_cosine", "optimise", "write_checkpoint", "read_checkpoint", "GRAD_CLIP_NORM"]


def warmup_cosine(optimiser, steps: int, *, max_warmup: int = 100, floor: float = 0.05):
    """Linear warm-up over ``min(max_warmup, steps // 10)`` steps, then a cosine from 1 down to ``floor``."""
    warmup = max(1, min(max_warmup, steps // 10))

    def factor(t: int) -> float:
        cosine = 0.5 * (1 + np.cos(np.pi * min(t, steps) / steps))
        return float(min(1.0, (t + 1) / warmup) * (floor + (1 - floor) * cosine))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


#: Largest gradient norm of a step (larger ones are scaled down).
GRAD_CLIP_NORM = 5.0


def optimise(loss, optimiser, schedule, params, *, max_norm: float = GRAD_CLIP_NORM) -> float:
    """One step: back-propagate ``loss``, clip the gradient norm, step optimiser and schedule; returns the loss."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimiser.step()
    schedule.step()
    return float(loss.detach())


def write_checkpoint(path, model, optimiser, schedule, **state) -> Path:
    """Save model, optimiser, schedule and ``state`` atomically (a kill mid-save keeps the previous one)."""
    from ..atomic import atomic_write

    record = {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
              "schedule": schedule.state_dict(), **state}
    return atomic_write(path, lambda tmp: torch.save(record, tmp))


def read_checkpoint(path) -> dict:
    """Read a ``.ckpt.pt`` safely (``weights_only``): a file carrying pickled code is refused."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist; give the .ckpt.pt written by an earlier run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickled code or a damaged file
        raise InputError(f"checkpoint {path} cannot be read safely ({type(err).__name__}); it may carry "
                         "pickled code, which is refused: delete it or start without resume") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"{path} is not a training checkpoint of this project")
    return state

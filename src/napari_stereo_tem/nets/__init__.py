"""Neural networks (torch modules only; training and inference live elsewhere)."""

from .unet import DislocationUNet

__all__ = ["DislocationUNet"]

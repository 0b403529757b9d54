"""The networks' weights and the user's training set.

- :mod:`.store`: saving, finding and loading weight versions (safetensors + JSON sidecar),
  the shipped ones in the package's ``weights/`` folder and the user's fine-tuned ones;
- :mod:`.training_set`: the append-only set of corrected labels that fine-tuning learns from.

The architectures are in :mod:`napari_stereo_tem.nets`, the training loops in
:mod:`napari_stereo_tem.training`.
"""

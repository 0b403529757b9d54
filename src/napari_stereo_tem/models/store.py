"""Saving, finding and loading network weights (safetensors + a JSON sidecar).

A model version is two files side by side::

    NAME.safetensors   # tensors only: no pickled code can run when it is read
    NAME.json          # metadata: architecture kwargs, training command, seed, data version, metric, ...

Versions are looked for in two places, in this order: the user's model
directory (where fine-tuning saves new versions) and the ``weights/`` folder
shipped inside the package. The user directory is ``$NAPARI_STEREO_TEM_MODELS``
when set, otherwise the platform's user-data directory (``platformdirs``) or
``~/.local/share/napari-stereo-tem/models``.

The functions are generic: the stereo matcher uses :func:`save_model` and
:func:`load_model` with its own class. Nothing here downloads anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_write
from ..checks import InputError

__all__ = [
    "check_device",
    "PACKAGE_WEIGHTS_DIR",
    "DEFAULT_DETECTOR",
    "load_version",
    "user_models_dir",
    "list_versions",
    "find_version",
    "save_model",
    "load_model",
    "read_metadata",
    "load_detector",
    "selected_version",
    "select_version",
]

#: Folder of the weights shipped with the package.
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
#: The detector version ``load_detector("default")`` loads.
DEFAULT_DETECTOR = "detector_v2"
_ENV = "NAPARI_STEREO_TEM_MODELS"


def user_models_dir() -> Path:
    """The folder where user (fine-tuned) model versions live; not created here."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        return Path.home() / ".local" / "share" / "napari-stereo-tem" / "models"
    return Path(platformdirs.user_data_dir("napari-stereo-tem", appauthor=False)) / "models"


def _search_dirs() -> list[Path]:
    return [user_models_dir(), PACKAGE_WEIGHTS_DIR]


def list_versions(prefix: str = "") -> list[str]:
    """Names of the model versions found (user directory first), optionally filtered by ``prefix``.

    Parameters
    ----------
    prefix : str
        Keep names starting with this (``"detector"`` or ``"matcher"``).
    """
    names: list[str] = []
    for folder in _search_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.safetensors")):
                if path.stem.startswith(prefix) and path.stem not in names:
                    names.append(path.stem)
    return names


def find_version(version: str, *, default: str = DEFAULT_DETECTOR) -> Path:
    """Path of the ``.safetensors`` file of a version name (or of a path given directly).

    ``"default"`` means ``default``. Raises :class:`InputError` naming the
    file looked for when it does not exist.
    """
    name = default if version == "default" else str(version)
    candidate = Path(name).expanduser()
    if candidate.suffix in (".pt", ".pth") and candidate.is_file():
        return candidate  # read with weights_only=True: pickled code is refused (see _read_state)
    if candidate.suffix == ".safetensors" or candidate.parent != Path("."):
        path = candidate if candidate.suffix == ".safetensors" else candidate.with_suffix(".safetensors")
        if not path.is_file():
            raise InputError(f"model weights file {path} does not exist; check the path")
        return path
    for folder in _search_dirs():
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return path
    looked = ", ".join(str(folder / f"{name}.safetensors") for folder in _search_dirs())
    available = ", ".join(list_versions()) or "none"
    raise InputError(
        f"model version {name!r} not found (looked for {looked}); available versions: {available}. "
        "Reinstall the package or train one with `stereo-tem train`"
    )


def save_model(model: nn.Module, path, metadata: dict | None = None) -> Path:
    """Write ``model``'s state to ``path`` (.safetensors) and metadata to the ``.json`` beside it.

    Parameters
    ----------
    model : torch.nn.Module
        Its ``architecture()`` (if it has one) is stored as ``metadata["architecture"]``.
    path : str or Path
        Target file; the suffix is forced to ``.safetensors``.
    metadata : dict, optional
        JSON-serialisable provenance (training command, seed, data version, metric, ...).

    Returns
    -------
    Path
        The weights file written. Both writes are atomic.
    """
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    meta = dict(metadata or {})
    if hasattr(model, "architecture") and "architecture" not in meta:
        meta["architecture"] = model.architecture()
    meta.setdefault("class", type(model).__name__)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"class": meta["class"]}))
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text + "\n"))
    return path


def read_metadata(path) -> dict:
    """The JSON metadata beside a weights file (empty dict when there is none)."""
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"the weights sidecar {meta_path} is not valid JSON ({err}); restore it from where the "
                         "weights came from, or re-save the model with napari_stereo_tem.models.store.save_model") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("architecture", {}), dict):
        raise InputError(f"the weights sidecar {meta_path} is not a metadata record (an object with an "
                         "'architecture' object); restore it, or re-save the model with save_model")
    return meta


def check_device(device):
    """``device`` as a ``torch.device`` that this torch can use.

    Raises
    ------
    InputError
        An unknown device name, or CUDA asked of a torch without CUDA or a machine without a GPU.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device {device!r} is not a torch device; use cpu or cuda (cuda:0, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        why = "this torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise InputError(f"device {device!r} asked for, but {why}; use --device cpu (device='cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: there are {torch.cuda.device_count()} CUDA device(s); "
                         "choose cuda:0 ... or cpu")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported; use cpu or cuda")
    return dev


def _read_state(path: Path) -> dict:
    if path.suffix != ".safetensors":
        # Legacy torch files are read without unpickling code (weights_only=True).
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle.UnpicklingError and friends
            raise InputError(
                f"{path} is not a plain weights file (it may carry pickled code, which is refused): {err}"
            ) from None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(
            f"{path} is not a valid safetensors weights file ({err}); only tensors are accepted, "
            "never pickled code: re-save the model with napari_stereo_tem.models.store.save_model"
        ) from None


def load_model(cls, path, device="cpu", **overrides) -> nn.Module:
    """Build ``cls(**architecture)`` from the sidecar metadata, load the weights, return it in eval mode.

    Parameters
    ----------
    cls : type
        The ``nn.Module`` subclass (e.g. ``DislocationUNet``).
    path : str or Path
        The ``.safetensors`` file (a ``.pt`` file is read with ``weights_only=True``).
    device : str or torch.device
        Where to put the model.
    **overrides
        Constructor arguments that replace those in the metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model weights file {path} does not exist; check the path or the version name")
    device = check_device(device)
    meta = read_metadata(path)
    saved_class = meta.get("class")
    if saved_class and saved_class != cls.__name__:
        kinds = {"DislocationUNet": "detector", "StereoNet": "matcher"}
        theirs, ours = kinds.get(saved_class, "another model"), kinds.get(cls.__name__, "the model asked for")
        where = f" (--{theirs})" if saved_class in kinds else ""
        raise InputError(f"{path} holds a {saved_class} ({theirs}), not a {cls.__name__} ({ours}); give it where "
                         f"a {theirs} is expected{where}")
    kwargs = dict(meta.get("architecture", {}))
    kwargs.update(overrides)
    try:
        model = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise InputError(f"the architecture in {path.with_suffix('.json')} does not fit {cls.__name__} ({err}); "
                         "is the sidecar from another model, or edited by hand? restore it") from None
    state = _read_state(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(
            f"weights in {path} do not fit {cls.__name__}({kwargs}): {str(err).splitlines()[0]}; "
            "is the JSON sidecar missing or from another model?"
        ) from None
    return model.to(device).eval()


def load_detector(version: str = "default", *, device="cpu") -> nn.Module:
    """Load a detector version (``"default"``: the one chosen with :func:`select_version`, else the shipped one;
    a name from :func:`list_versions`; or a path).

    Returns
    -------
    DislocationUNet
        In eval mode on ``device``; ``model.version`` and ``model.metadata`` tell where it came from.
    """
    from ..nets.unet import DislocationUNet

    return load_version("detector", DislocationUNet, version, default=DEFAULT_DETECTOR, device=device)


def load_version(kind: str, cls, version: str = "default", *, default: str, device="cpu") -> nn.Module:
    """Load a model version of ``kind`` as ``cls``: ``"default"`` is the one chosen with
    :func:`select_version`, else ``default`` (the shipped one); the model gets ``.version``
    and ``.metadata``."""
    if version == "default":
        version = selected_version(kind) or "default"
    path = find_version(version, default=default)
    model = load_model(cls, path, device)
    model.version = path.stem
    model.metadata = read_metadata(path)
    return model


#: File in :func:`user_models_dir` holding the versions the pipeline uses (``{"detector": name, ...}``).
SELECTION_FILE = "selected_versions.json"


def selected_version(kind: str) -> str | None:
    """The version chosen with :func:`select_version` for ``kind`` (``"detector"`` or ``"matcher"``).

    ``None`` when nothing was chosen, or when the chosen version no longer
    exists (a warning says so; the shipped default is used then).
    """
    path = user_models_dir() / SELECTION_FILE
    try:
        name = json.loads(path.read_text()).get(kind)
    except (OSError, ValueError, AttributeError):
        return None
    if not name:
        return None
    try:
        find_version(name)
    except InputError:
        import warnings

        warnings.warn(f"the selected {kind} version {name!r} no longer exists; using the shipped default",
                      stacklevel=2)
        return None
    return str(name)


def select_version(kind: str, version: str | None) -> Path:
    """Make ``version`` the one ``load_detector()``/``load_matcher()`` use by default (``None``: shipped default).

    The choice is stored (atomically) in ``SELECTION_FILE`` of :func:`user_models_dir`.
    """
    if kind not in ("detector", "matcher"):
        raise InputError(f"kind must be 'detector' or 'matcher', got {kind!r}")
    if version is not None:
        find_version(version)  # refuse a version that does not exist
    path = user_models_dir() / SELECTION_FILE
    try:
        choice = json.loads(path.read_text())
        choice = choice if isinstance(choice, dict) else {}
    except (OSError, ValueError):
        choice = {}
    if version is None:
        choice.pop(kind, None)
    else:
        choice[kind] = str(version)
    text = json.dumps(choice, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path

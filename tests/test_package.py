"""The package installs as a napari plugin, and its core stays free of GUI imports."""

import importlib
import pkgutil
import subprocess
import sys

import pytest
import yaml

import napari_stereo_tem
from napari_stereo_tem.cli import SUBCOMMANDS, build_parser, main

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


def _core_modules():
    names = []
    for info in pkgutil.walk_packages(napari_stereo_tem.__path__, prefix="napari_stereo_tem."):
        if "._napari" in info.name or info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_npe2_validate():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-stereo-tem"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_installed_manifest_is_the_repository_file():
    from importlib.resources import files
    from pathlib import Path

    served = files("napari_stereo_tem").joinpath("napari.yaml").read_text()
    root = Path(__file__).resolve().parents[1] / "napari.yaml"
    assert served == root.read_text()


def test_core_imports_no_gui_module():
    modules = _core_modules()
    assert len(modules) >= 5, modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI_MODULES!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported GUI modules: {result.stdout.strip()}"


def _python_names():
    from importlib.resources import files

    manifest = yaml.safe_load(files("napari_stereo_tem").joinpath("napari.yaml").read_text())
    return [c["python_name"] for c in manifest["contributions"]["commands"]]


@pytest.mark.parametrize("python_name", _python_names())
def test_manifest_python_names_import(python_name):
    module_name, attr = python_name.split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))


def _subcommand_names(parser) -> list[str]:
    """The subcommands as typed (a module of SUBCOMMANDS may name its subcommand otherwise: rank -> rank-detectors)."""
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    names = list(actions[0].choices)
    assert len(names) == len(SUBCOMMANDS)
    return names


def test_cli_help_for_every_subcommand(capsys):
    parser = build_parser()
    assert parser.prog == "stereo-tem"
    for name in _subcommand_names(parser):
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert name in capsys.readouterr().out


def test_cli_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "napari_stereo_tem.cli", "--help"],
                            capture_output=True, text=True, check=True)
    assert "stereo-tem" in result.stdout
    for name in _subcommand_names(build_parser()):
        assert name in result.stdout


OLD_PATHS = {"alignment": "stereo.alignment", "rectification": "stereo.rectification", "detection": "stereo.detection",
             "detect": "stereo.detect", "matching": "stereo.matching", "projection": "stereo.projection",
             "reconstruct": "stereo.pipeline", "corrections": "stereo.corrections",
             "reprojection": "stereo.reprojection", "crystal": "stereo.crystal_frame", "lines_io": "stereo.lines_io",
             "pair_list": "stereo.pair_list", "skeleton_graph": "stereo.skeleton_graph", "weights": "models.store",
             "training_set": "models.training_set", "metrics": "evaluation.metrics"}


@pytest.mark.parametrize("old, new", sorted(OLD_PATHS.items()))
def test_old_module_paths_still_import_as_the_new_modules(old, new):
    assert importlib.import_module(f"napari_stereo_tem.{old}") is importlib.import_module(f"napari_stereo_tem.{new}")


def test_no_module_of_the_project_uses_an_old_path():
    modules = [m for m in _core_modules() if m.split(".", 1)[1] not in OLD_PATHS]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(','.join(sorted(o for o in {sorted(OLD_PATHS)!r} if 'napari_stereo_tem.' + o in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"modules imported through old paths: {result.stdout.strip()}"

"""The `emodistill` entry point: the command -> module map, and light commands staying light."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from emodistill.cli.main import COMMAND_MODULES, build_parser, main

HEAVY = ("torch", "transformers", "ray", "mlflow", "matplotlib")  # seconds to import, each


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_command_map_names_what_each_module_registers(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert set(sub.choices) == {command for command, owner in COMMAND_MODULES.items() if owner == module}


def _heavy_modules_imported(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_tracking_commands_do_not_import_torch():
    code = "from emodistill.cli.main import build_parser; build_parser('ui')"
    assert _heavy_modules_imported(code) == []


def test_top_level_help_imports_no_heavy_library():
    code = "from emodistill.cli.main import main\ntry: main(['--help'])\nexcept SystemExit: pass"  # help ends in exit
    assert _heavy_modules_imported(code) == []


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    assert all(command in listed for command in COMMAND_MODULES)
    assert build_parser("no-such-command").parse_args(["report", "--results", "r.json"]).command == "report"


def test_sweep_names_its_experiment_as_best_does_and_still_takes_name():
    parser = build_parser("sweep")
    assert parser.parse_args(["sweep", "--experiment", "a"]).experiment == "a"
    assert parser.parse_args(["sweep", "--name", "b"]).experiment == "b"

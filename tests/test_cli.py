"""The `emodistill` entry point: the command -> module map, and light commands staying light."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from emodistill.cli.main import COMMAND_MODULES, build_parser, main


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_command_map_names_what_each_module_registers(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert set(sub.choices) == {command for command, owner in COMMAND_MODULES.items() if owner == module}


def test_tracking_commands_do_not_import_torch():
    code = ("import sys; from emodistill.cli.main import build_parser; build_parser('ui'); "
            "print(sorted(m for m in ('torch', 'transformers', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    assert all(command in listed for command in COMMAND_MODULES)
    assert build_parser("no-such-command").parse_args(["report", "--results", "r.json"]).command == "report"

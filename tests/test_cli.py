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


def _raise(exc: BaseException):
    def run(args):
        raise exc
    return run


@pytest.mark.parametrize("exc, status, line", [
    (OSError(30, "Read-only file system", "out/c"), 2,
     "emodistill corpus: error: out/c: the file system is read-only: choose a writable folder"),
    (OSError(28, "No space left on device"), 2,  # as pyarrow raises it, naming no file: the command's --out is named
     "emodistill corpus: error: out: no space left on the device: free some space or choose a folder on another disk"),
    (RecursionError("maximum recursion depth exceeded"), 2,
     "emodistill corpus: error: an input file: nested too deeply (thousands of brackets?): check the JSON and YAML "
     "files given"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 20000000000 bytes. Error code 12 (Cannot allocate memory)"), 2,
     "emodistill corpus: error: out of memory (it tried to allocate 20000000000 bytes): make the sizes in the "
     "config (model, batches, budgets) smaller or free memory"),
    (MemoryError(), 2, "emodistill corpus: error: out of memory: make the sizes in the config (model, batches, "
                       "budgets) smaller or free memory"),
    (KeyError("members"), 1, "emodistill corpus: internal error: KeyError: 'members' (a bug in emodistill: run again "
                             "with --verbose for the traceback, and report it)"),
])
def test_the_error_boundary_prints_one_line(monkeypatch, capsys, exc, status, line):
    import emodistill.cli.corpus as corpus_cli

    monkeypatch.setattr(corpus_cli, "run_manifest", _raise(exc))
    assert main(["corpus", "manifest", "--csv", "m.csv", "--out", "out"]) == status
    assert capsys.readouterr().err.splitlines() == [line]


def test_mlflow_errors_name_the_tracking_store(monkeypatch, capsys):
    from mlflow.exceptions import MlflowException

    import emodistill.cli.tracking as tracking_cli

    monkeypatch.setattr(tracking_cli, "run_best", _raise(MlflowException("API request failed with error code 401")))
    assert main(["best", "--experiment", "x", "--tracking-uri", "http://127.0.0.1:9/"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "emodistill best: error: tracking store http://127.0.0.1:9/: API request failed with error code 401: check "
        "--tracking-uri, $MLFLOW_TRACKING_URI and the server's credentials"]


def test_verbose_shows_an_internal_error_s_traceback(monkeypatch, capsys):
    import emodistill.cli.corpus as corpus_cli

    monkeypatch.setattr(corpus_cli, "run_manifest", _raise(KeyError("members")))
    assert main(["--verbose", "corpus", "manifest", "--csv", "m.csv", "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("and report it)")


@pytest.mark.parametrize("command", [["corpus", "synth", "--out", "c"], ["features", "extract", "--corpus", "c",
                                     "--out", "f"], ["evaluate", "--features", "f"], ["sample", "--experiment", "x",
                                     "--ppc", "1", "--out", "o"]])
def test_a_seed_beyond_what_configs_take_is_refused_by_the_parser(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--seed", str(2**32)])
    assert exit_info.value.code == 2
    assert "argument --seed: expected an integer in [0, 2^32), got '4294967296'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    (["distill"], "emodistill distill: error: the following arguments are required: --features "
                  "(see emodistill distill --help)"),
    (["corpus", "synth", "--out", "c", "--seed", "two"], "emodistill corpus synth: error: argument --seed: "),
    (["no-such-command"], "emodistill: error: argument COMMAND: invalid choice: 'no-such-command'"),
])
def test_a_command_line_argparse_refuses_is_one_line_without_the_usage(argv, expected):
    run = subprocess.run([sys.executable, "-m", "emodistill.cli.main", *argv], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith(expected), run.stderr


def test_the_cache_folder_of_an_empty_or_unusable_environment_variable(monkeypatch, tmp_path):
    from emodistill.errors import ConfigError
    from emodistill.runtime import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("EMODISTILL_CACHE", "")  # unset, not the working directory
    assert cache_dir("pools") == tmp_path / "emodistill" / "pools"
    monkeypatch.setenv("EMODISTILL_CACHE", "~no-such-user-here/c")
    with pytest.raises(ConfigError, match=r"\$EMODISTILL_CACHE ~no-such-user-here/c: its ~ names no home folder"):
        cache_dir("pools")
    with pytest.raises(SystemExit) as done:  # the help no longer reads it
        main(["distill", "--help"])
    assert done.value.code == 0

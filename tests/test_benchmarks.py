"""The benchmark scripts still match the package: each imports (every name it takes from emodistill exists).

A script (a file run as `python benchmarks/NAME.py`) has a main(); a module the scripts share (draws.py) only
has to import.

They are not run here (they are measurements, minutes each); a renamed or removed function would otherwise
only show when someone next runs them.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_benchmark_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(script).stem}", BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    if '__name__ == "__main__"' in (BENCHMARKS / script).read_text():
        assert callable(getattr(module, "main", None)), f"{script} has no main()"

"""What `emodistill ui` holds in memory: the RSS of its whole process tree, against a 1 GiB target.

Builds a store shaped like the demo's (the smoke sweep: a parent run, a reference, four trials with their metric
histories; or measures the store passed with --tracking-uri), starts `emodistill ui` on it, opens the experiment's
pages over HTTP as a browser would, then sums the resident memory of the supervising `emodistill` process and every
process under it (from /proc), and stops it with Ctrl-C as a user would.

    python benchmarks/ui_footprint.py [--tracking-uri sqlite:///emodistill-demo/mlruns.db] [--settle 10]

Prints each process with its RSS, then the total against the target.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MIB = 1024
EXPERIMENT = "smoke"
VARIANTS = ("baseline", "div", "sml", "div_sml")


def demo_like_store(directory: Path) -> str:
    """A sqlite store holding one smoke-like sweep: what the demo leaves, without its hours of CPU."""
    from emodistill.tracking.runs import KIND_TAG, finish_run, log_metrics, start_parent_run, start_trial_run
    from emodistill.tracking.store import get_or_create_experiment, tracking_client

    uri = f"sqlite:///{directory / 'mlruns.db'}"
    parent = start_parent_run(EXPERIMENT, EXPERIMENT, {"objective.metric": "dev_uar_ppc20"}, None, uri,
                              features="f00d")
    client = tracking_client(uri)
    experiment_id = get_or_create_experiment(EXPERIMENT, uri)
    reference = client.create_run(experiment_id, run_name="reference",
                                  tags={KIND_TAG: "baseline", "mlflow.parentRunId": parent})
    log_metrics(client, reference.info.run_id, {"uar_real_full": 0.62}, step=0)
    finish_run(client, reference.info.run_id, "FINISHED")
    for i, variant in enumerate(VARIANTS):
        run_id = start_trial_run(client, experiment_id, parent, f"gan_cnn · {variant}", {"variant": variant})
        for step in range(0, 301, 10):
            log_metrics(client, run_id, {"loss.g": 1.0 / (step + 1), "loss.d": 0.5 - step / 1000}, step=step)
        for step in (150, 300):
            log_metrics(client, run_id, {"dev_uar_ppc20": 0.3 + 0.05 * i + step / 3000,
                                         "uar_ppc20": 0.28 + 0.05 * i + step / 3000}, step=step)
        finish_run(client, run_id, "FINISHED")
    finish_run(client, parent, "FINISHED")
    return uri


def tree(root: int) -> list[int]:
    """`root` and every process descended from it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_mib(pid: int) -> tuple[float, str]:
    """The process's resident memory (MiB) and its command line, shortened."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0.0, "(ended)"
    kib = int(re.search(r"^VmRSS:\s+(\d+)", status, re.MULTILINE).group(1)) if "VmRSS" in status else 0
    return kib / 1024, command.strip()[:100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", help="store to serve (default: a demo-like store built in a temp folder)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after the pages load")
    args = parser.parse_args()
    from emodistill.tracking.server import free_port

    with tempfile.TemporaryDirectory(prefix="ui-footprint-") as scratch:
        uri = args.tracking_uri or demo_like_store(Path(scratch))
        port = free_port()
        ui = subprocess.Popen([str(Path(sys.executable).with_name("emodistill")), "ui", "--tracking-uri", uri,
                               "--port", str(port)], stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            first = ui.stdout.readline()
            if not first.startswith("MLflow UI at"):
                raise SystemExit(f"emodistill ui did not start: {first}")
            base = f"http://127.0.0.1:{port}"
            for path in ("/", "/ajax-api/2.0/mlflow/experiments/search?max_results=10"):
                with urllib.request.urlopen(base + path, timeout=30) as response:
                    response.read()
            time.sleep(args.settle)
            rows = [(pid, *rss_mib(pid)) for pid in tree(ui.pid)]
        finally:
            os.killpg(ui.pid, signal.SIGINT)
            ui.wait(timeout=60)
    total = sum(rss for _, rss, _ in rows)
    for pid, rss, command in rows:
        print(f"{pid:>8} {rss:8.1f} MiB  {command}")
    verdict = "within" if total <= TARGET_MIB else "OVER"
    print(f"emodistill ui: {len(rows)} processes, {total:.0f} MiB RSS in all ({verdict} the {TARGET_MIB} MiB target)")


if __name__ == "__main__":
    main()

"""What `sweep --resume` checks before Ray Tune unpickles a sweep directory.

`Tuner.restore` unpickles `tuner.pkl`, the searcher's state and the trials pickled inside the experiment state
files: code runs as it reads them. So before a resume the directory must be one only this user can write,
and those files must be the ones this user's sweep wrote: their SHA-256, recorded in the sweep's MLflow parent
run (a store the user controls) when the sweep started and whenever its driver stopped, must still match.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import stat
from pathlib import Path

import pyarrow.fs as pafs
from mlflow import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from emodistill import storage
from emodistill.errors import IntegrityError

STATE_TAG = "emodistill.sweep_state_sha256"
# The files of a Tune experiment directory that a restore deserialises: pickles, and the JSON states that embed
# them (the experiment state holds each trial cloudpickled); sweep.json says where the resume logs and reads.
STATE_PATTERNS = ("*.pkl", "experiment_state-*.json", "*-state-*.json", "sweep.json")


def state_manifest(experiment_path: str | Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under the sweep directory (a folder or a URI) that a restore reads
    and may unpickle."""
    fs, root = storage.filesystem(str(experiment_path))
    manifest = {}
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File and any(fnmatch.fnmatch(info.base_name, p) for p in STATE_PATTERNS):
            digest = hashlib.sha256()
            with fs.open_input_stream(info.path) as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            manifest[posixpath.relpath(info.path, root)] = digest.hexdigest()
    return dict(sorted(manifest.items()))


def combined_digest(manifest: dict[str, str]) -> str:
    """One SHA-256 over a whole manifest (names and digests)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def record_state(client: MlflowClient, parent_run_id: str, experiment_path: str | Path) -> None:
    """Store the sweep directory's state manifest in the parent run (called when the sweep starts and stops): each
    file's digest where the tag can hold them all, else one digest over all of them."""
    manifest = state_manifest(experiment_path)
    value = json.dumps({"combined": combined_digest(manifest), "files": manifest}, sort_keys=True)
    if len(value) > MAX_TAG_VAL_LENGTH:
        value = json.dumps({"combined": combined_digest(manifest)})
    client.set_tag(parent_run_id, STATE_TAG, value)


def check_private(experiment_path: str | Path) -> None:
    """Raise unless the sweep directory, everything in it and its parent belong to this user and only it can
    write them (another user could otherwise plant a pickle there). In object storage, who may write is the
    bucket's policy; there the recorded digests are the check."""
    if storage.is_uri(experiment_path):
        return
    experiment_path = Path(experiment_path)
    uid = os.getuid()
    for path in [experiment_path.parent, experiment_path, *experiment_path.rglob("*")]:
        info = path.lstat()
        if info.st_uid != uid or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = "another user" if info.st_uid != uid else "its group or others"
            raise IntegrityError(f"{path} can be written by {who} (mode {stat.filemode(info.st_mode)}): a resume "
                                 "would unpickle files someone else may have planted; resume only a sweep directory "
                                 "that only you can write (chmod go-w, or copy it to a private place)")


def verify_state(client: MlflowClient, parent_run_id: str, experiment_path: str | Path) -> None:
    """Raise unless every state file matches the manifest the sweep's parent run recorded (none added or changed)."""
    recorded = client.get_run(parent_run_id).data.tags.get(STATE_TAG)
    if recorded is None:
        raise IntegrityError(f"{experiment_path}: its sweep (parent run {parent_run_id}) recorded no digests of its "
                             "state files, so they cannot be verified; it is not resumed")
    expected, manifest = json.loads(recorded), state_manifest(experiment_path)
    if combined_digest(manifest) == expected["combined"]:
        return
    files = expected.get("files", {})
    where = str(experiment_path)
    for name, digest in manifest.items():
        if files and name not in files:
            raise IntegrityError(f"{storage.join(where, name)} was written after the sweep last recorded its state "
                                 "(its driver did not stop cleanly, or someone added it); it is not unpickled")
        if files and files[name] != digest:
            raise IntegrityError(f"{storage.join(where, name)} does not match the SHA-256 its sweep recorded: it "
                                 "changed since the sweep's driver stopped; it is not unpickled")
    raise IntegrityError(f"{experiment_path}: its state files differ from those its sweep recorded when its driver "
                         "last stopped (changed, added or removed); they are not unpickled")

"""The deployment examples in jobs/ and the README's multi-node recipe, checked as far as this machine can: they
parse, the Ray cluster launcher accepts its config, and every command they run is one the CLI accepts, with files
that exist in the checkout and the settings tests/test_object_storage.py runs with."""

from __future__ import annotations

import copy
import re
import shlex
from string import Template

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from emodistill import storage
from emodistill.cli.main import build_parser
from emodistill.sweep.space import load_space
from ray_nodes import JOB_STOP_ON_SIGINT
from sweep_fixtures import REPO

IMAGE_CHECKOUT = "/opt/emodistill"  # where the RayJob's image holds this checkout


def kubernetes_objects() -> dict[str, dict]:
    """kind -> the object, from jobs/kuberay-rayjob.yaml."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all((REPO / "jobs" / "kuberay-rayjob.yaml").read_text())}


def in_checkout(path: str) -> str:
    """A path of the image's checkout as a path of this one."""
    assert path.startswith(IMAGE_CHECKOUT + "/"), path
    return str(REPO / path[len(IMAGE_CHECKOUT) + 1:])


def pod_specs(job: dict) -> dict[str, dict]:
    """The head's and each worker group's pod spec."""
    cluster = job["spec"]["rayClusterSpec"]
    return {"head": cluster["headGroupSpec"]["template"]["spec"],
            **{group["groupName"]: group["template"]["spec"] for group in cluster["workerGroupSpecs"]}}


def test_rayjob_runs_the_sweep_on_uris_from_its_environment():
    objects = kubernetes_objects()
    env, job = objects["ConfigMap"]["data"], objects["RayJob"]
    assert job["apiVersion"] == "ray.io/v1" and job["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    # The head expands the entrypoint's variables from emodistill-env; an undefined one raises KeyError here.
    python, script, *arguments = shlex.split(Template(job["spec"]["entrypoint"]).substitute(env))
    assert (python, script) == ("python", f"{IMAGE_CHECKOUT}/jobs/sweep.py")
    args = build_parser("sweep").parse_args(["sweep", *arguments])
    load_space(in_checkout(str(args.space)))
    assert storage.is_uri(args.storage_path) and args.tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert JOB_STOP_ON_SIGINT.items() <= env.items()
    pods = pod_specs(job)
    for name, pod in pods.items():
        (container,) = pod["containers"]
        # The URIs, the bucket's credentials, and the tracking server's user and password (it requires them).
        assert {"emodistill-env", "emodistill-s3", "emodistill-mlflow"} == {
            next(iter(source.values()))["name"] for source in container["envFrom"]}, name
    # Only the driver, on the head, reads the features; no worker mounts anything.
    (mount,) = pods.pop("head")["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == str(args.features)
    assert all("volumeMounts" not in pod["containers"][0] for pod in pods.values())


def test_rayjob_tracking_server_is_emodistill_ui_with_artifacts_in_object_storage():
    objects = kubernetes_objects()
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    program, *arguments = container["command"]
    args = build_parser("ui").parse_args(arguments)
    assert program == "emodistill" and args.command == "ui" and args.host == "0.0.0.0" and args.create
    assert {"name": "emodistill-mlflow"} in [source.get("secretRef") for source in container["envFrom"]]
    assert storage.is_uri(args.artifacts_destination) and args.tracking_uri.startswith("sqlite:////")
    service = objects["Service"]
    assert objects["ConfigMap"]["data"]["MLFLOW_TRACKING_URI"] == (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}")
    assert service["spec"]["ports"][0]["targetPort"] == args.port


def test_cluster_launcher_config_is_one_ray_up_accepts():
    config = yaml.safe_load((REPO / "jobs" / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks before it starts anything
    assert config["file_mounts"]["/home/ubuntu/emodistill"] == "."
    assert "bash install.sh" in config["setup_commands"][0]
    (head,) = config["head_start_ray_commands"]
    assert all(f"{key}={value}" in head for key, value in JOB_STOP_ON_SIGINT.items())
    assert all(command.startswith("RAY_AUTH_MODE=token ") for command in
               config["head_start_ray_commands"] + config["worker_start_ray_commands"])


def readme_recipe() -> list[list[str]]:
    """The commands of the README's multi-node recipe, each split into words (continuations joined, no comments)."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"<!-- multi-node:[^\n]*\n```bash\n(.*?)```", readme, re.S)
    assert match, "README.md has no ```bash block after its multi-node marker"
    lines = match.group(1).replace("\\\n", " ").splitlines()
    return [words for line in lines if (words := shlex.split(line, comments=True))]


def test_readme_multi_node_recipe_uses_the_settings_the_object_storage_test_runs_with():
    commands = readme_recipe()
    exported = {word.split("=")[0] for words in commands if words[0] == "export" for word in words[1:]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
            "MLFLOW_S3_ENDPOINT_URL", "RAY_AUTH_MODE"} <= exported
    (ui,) = [words for words in commands if words[:2] == ["emodistill", "ui"]]
    server = build_parser("ui").parse_args(ui[1:])
    assert storage.is_uri(server.artifacts_destination) and server.host == "0.0.0.0"
    (head,) = [words for words in commands if "--head" in words]
    assert dict(word.split("=") for word in head[:head.index("ray")]) == JOB_STOP_ON_SIGINT
    sweep, resume = [build_parser("sweep").parse_args(["sweep", *words[words.index("jobs/sweep.py") + 1:]])
                     for words in commands if words[:3] == ["ray", "job", "submit"]]
    load_space(REPO / sweep.space)
    assert storage.is_uri(sweep.storage_path) and sweep.tracking_uri.startswith("http://")
    assert resume.resume.startswith(f"{sweep.storage_path}/smoke-") and resume.space is None
    (reader,) = [words for words in commands if words[0] == "python"]
    assert "champion=True" in reader[-1] and sweep.tracking_uri in reader[-1]

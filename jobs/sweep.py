"""Ray Jobs entrypoint for a sweep.

    RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/sweep.py --space search_spaces/smoke.yaml --features DIR \
        --tracking-uri http://MLFLOW:5000 --storage-path s3://BUCKET/sweeps

Takes the arguments of `emodistill sweep` (`--resume s3://BUCKET/sweeps/NAME-DATE` continues a sweep). Inside
the job $RAY_ADDRESS is set, so the sweep's ray.init() joins the cluster the job was submitted to; run directly,
it starts a local Ray. Only this driver reads the features (on the head node); emodistill must be installed on
every node (`pip install -e '.[s3]'` in the image or set-up command). kuberay-rayjob.yaml (Kubernetes) and
ray-cluster.yaml (the Ray cluster launcher) beside this file deploy it.
"""

import sys

from emodistill.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))

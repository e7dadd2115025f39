"""Ray Jobs entrypoint for a sweep.

    RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/sweep.py --space search_spaces/smoke.yaml --features DIR --tracking-uri http://MLFLOW:5000

Takes the arguments of `emodistill sweep`. Inside the job $RAY_ADDRESS is set, so the sweep's
ray.init() joins the cluster the job was submitted to; run directly, it starts a local Ray.
emodistill must be installed on every node (`pip install -e .` in the image or set-up command).
"""

import sys

from emodistill.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))

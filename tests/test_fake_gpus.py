"""What a trial is given on a GPU machine, checked on the CPU machine: a Ray of its own started
with one declared (fake) GPU. A zero-GPU task sees no GPU id and trains on the CPU, a 0.5-GPU task
gets one id, and the search's slot count is the one Ray itself packs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, private_ray_env

pytestmark = pytest.mark.e2e

SCRIPT = """
import json, ray
from digitsearch.core.engine import device_for
from digitsearch.search.request import SearchRequest
from digitsearch.search import session
from digitsearch.search.session import concurrency

ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)

def given():
    ids = ray.get_gpu_ids()
    return {"ids": [str(i) for i in ids], "device": device_for(ids, cuda_available=True).type}

seen = {share: ray.get(ray.remote(num_gpus=share, num_cpus=0)(given).remote()) for share in (0, 0.5, 1)}

@ray.remote(num_gpus=0.2, num_cpus=0)
class Slot:
    def ids(self):
        return [str(i) for i in ray.get_gpu_ids()]

packed = [Slot.remote() for _ in range(5)]  # one GPU holds 5 of 0.2: all of them start
ready, _ = ray.wait([slot.ids.remote() for slot in packed], num_returns=5, timeout=60)
resources = ray.cluster_resources()
shares = {str(gpus): session.gpu_share(("cnn",), gpus)[0] for gpus in (0, resources["GPU"])}
slots = {share: concurrency(SearchRequest(trials=100, gpus_per_trial=share, cpus_per_trial=0.01),
                            resources["CPU"], resources["GPU"]) for share in (1, 0.5, 0.25, 0.2, 0.1)}
print(json.dumps({"seen": {str(k): v for k, v in seen.items()}, "packed": len(ready), "slots": slots,
                  "shares": shares}))
"""


def test_each_trial_gets_the_gpus_ray_gave_it():
    ran = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=private_ray_env(), capture_output=True,
                         text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert found["seen"]["0"] == {"ids": [], "device": "cpu"}
    assert len(found["seen"]["0.5"]["ids"]) == 1 and found["seen"]["0.5"]["device"] == "cuda"
    assert len(found["seen"]["1"]["ids"]) == 1
    assert found["packed"] == 5  # what Ray packs ...
    assert found["slots"] == {"1": 1, "0.5": 2, "0.25": 4, "0.2": 5, "0.1": 10}  # ... is what the search plans
    assert found["shares"] == {"0": 0.0, "1.0": 0.25}  # no --gpus-per-trial: GPUs used where Ray has them

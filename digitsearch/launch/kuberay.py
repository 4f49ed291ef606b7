"""`digitsearch cluster kuberay ... -- tune ...`: a RayJob (apiVersion ray.io/v1) whose entrypoint
is `digitsearch tune ...`; KubeRay creates the cluster, runs the search on it and deletes the
cluster afterwards. The manifest is data (dicts dumped as YAML), not a text template: YAML's
own quoting keeps every value intact. Nothing here talks to Kubernetes.
"""
from __future__ import annotations

import re

from digitsearch.errors import UserError
from digitsearch.launch.checks import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_PORT,
    RAY_CLIENT_PORT,
    check_count,
    check_tune_args,
    tune_command,
)

_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # an RFC 1123 label, as Kubernetes names need
_K8S_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")


def check_k8s_name(value: str, option: str) -> str:
    if len(value) > 63 or not _K8S_NAME.fullmatch(value):
        raise UserError(f"{option} {value!r} must be a Kubernetes name: at most 63 lowercase letters, digits and '-', "
                        "starting and ending with a letter or digit")
    return value


def check_memory(value: str, option: str) -> str:
    if not _K8S_MEMORY.fullmatch(value):
        raise UserError(f"{option} must be a Kubernetes quantity such as 8Gi or 16G (got {value!r})")
    return value


def _container(name: str, image: str, cpus: int | str, memory: str, gpus: int, ports=(), mount=None) -> dict:
    amounts = {"cpu": str(cpus), "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    container = {"name": name, "image": image, "resources": {"requests": dict(amounts), "limits": dict(amounts)}}
    if ports:
        container["ports"] = [{"containerPort": number, "name": port_name} for port_name, number in ports]
    if mount:
        container["volumeMounts"] = [{"name": "shared", "mountPath": mount[1]}]
    return container


def _pod(container: dict, gpus: int, mount) -> dict:
    spec: dict = {"containers": [container]}
    if gpus:  # GPU nodes are often tainted so that only pods asking for GPUs land there
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if mount:
        spec["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": mount[0]}}]
    return {"spec": spec}


def kuberay_manifest(tune_args: list[str], *, workers: int, cpus_per_worker: int, gpus_per_worker: int,
                     memory: str, image: str | None, job_name: str = "digitsearch", head_num_cpus: int = 0,
                     head_memory: str = "4Gi", ttl: int = 600, pvc: str | None = None,
                     mount_path: str = "/mnt/shared") -> str:
    """A RayJob: KubeRay starts a head and `workers` worker pods, runs the search, then deletes the cluster."""
    import yaml

    args = check_tune_args(tune_args)
    for value, option, minimum in ((workers, "--workers", 1), (cpus_per_worker, "--cpus-per-worker", 1),
                                   (gpus_per_worker, "--gpus-per-worker", 0), (head_num_cpus, "--head-num-cpus", 0),
                                   (ttl, "--ttl", 0)):
        check_count(value, option, minimum)
    check_memory(memory, "--memory")
    check_memory(head_memory, "--head-memory")
    _check_image(image)
    check_k8s_name(job_name, "--job-name")
    if pvc is not None:
        check_k8s_name(pvc, "--pvc")
    if not mount_path.startswith("/"):
        raise UserError(f"--mount-path must be an absolute path (got {mount_path!r})")
    mount = (pvc, mount_path) if pvc else None
    head = _container("ray-head", image, max(1, head_num_cpus), head_memory, 0, mount=mount,
                      ports=[("gcs-server", DEFAULT_PORT), ("dashboard", DEFAULT_DASHBOARD_PORT),
                             ("client", RAY_CLIENT_PORT)])
    worker = _container("ray-worker", image, cpus_per_worker, memory, gpus_per_worker, mount=mount)
    manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": job_name, "labels": {"app.kubernetes.io/name": "digitsearch"}},
        "spec": {
            # Run by `ray job submit` on the head; RAY_ADDRESS points the search at this cluster.
            "entrypoint": tune_command(args),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": ttl,
            "rayClusterSpec": _cluster(head, worker, head_num_cpus, workers, gpus_per_worker, mount),
        },
    }
    return _header(job_name, workers, ttl, pvc, mount_path) + \
        yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=1_000_000)


def _check_image(image: str | None) -> None:
    if not image or not image.strip() or any(c.isspace() for c in image):
        raise UserError("--image is required: a container image with digitsearch and Ray installed "
                        "(the same Ray version on head and workers), e.g. --image registry.example.com/digitsearch:1.0")


def _cluster(head: dict, worker: dict, head_num_cpus: int, workers: int, gpus_per_worker: int, mount) -> dict:
    return {
        "headGroupSpec": {
            "rayStartParams": {
                "dashboard-host": "0.0.0.0",
                "num-cpus": str(head_num_cpus),  # 0: trials run on the workers only
            },
            "template": _pod(head, 0, mount),
        },
        "workerGroupSpecs": [{
            "groupName": "workers",
            "replicas": workers,
            "minReplicas": workers,
            "maxReplicas": workers,
            # KubeRay gives Ray the CPUs, memory and GPUs of the container's limits below
            "rayStartParams": {},
            "template": _pod(worker, gpus_per_worker, mount),
        }],
    }


def _header(job_name: str, workers: int, ttl: int, pvc: str | None, mount_path: str) -> str:
    storage = (f"# The PVC {pvc!r} is mounted at {mount_path} on every pod: e.g. --results {mount_path}/results.\n"
               if pvc else
               "# No shared volume is mounted (--pvc CLAIM mounts a ReadWriteMany claim on every pod).\n")
    return (
        f"# A digitsearch search as a KubeRay RayJob (written by `digitsearch cluster kuberay`).\n"
        f"# Apply with: kubectl apply -f <this file>; follow with: kubectl get rayjob {job_name}\n"
        f"#   and: kubectl logs -f job/{job_name} (the submitter's log is the search's output).\n"
        f"# The cluster ({workers} worker pod{'s' if workers != 1 else ''}) is deleted {ttl}s after the search ends:\n"
        f"# send the results to shared storage (--storage, or --results on a volume every pod mounts),\n"
        f"# or they go with the pods.\n"
        f"{storage}"
    )

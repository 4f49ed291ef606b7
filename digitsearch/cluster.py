"""Launch files for a search on a multi-node Ray cluster: a SLURM sbatch script and a KubeRay RayJob.

`digitsearch cluster slurm ... -- tune ...` and `digitsearch cluster kuberay ... -- tune ...`
print these; nothing here starts Ray or talks to a cluster. Each builder checks its input
(a UserError with one line) and returns the file as text:

- slurm_script: starts a Ray head on the job's first node and a worker on every other node
  with srun (the pattern of Ray's "Deploying on Slurm"), waits until all nodes have joined,
  then runs `digitsearch tune ... --address <head>:<port>` on the head node.
- kuberay_manifest: a RayJob (apiVersion ray.io/v1) whose entrypoint is `digitsearch tune ...`;
  KubeRay creates the cluster, runs the search on it and deletes the cluster afterwards.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from digitsearch.errors import UserError

DEFAULT_PORT = 6379  # Ray's GCS port
DEFAULT_DASHBOARD_PORT = 8265
RAY_RESERVED_PORTS = (10001, 19999)  # `ray start`'s default client server port and worker port range
DEFAULT_WAIT_TIMEOUT = 300  # seconds the SLURM script waits for every node to join

_SLURM_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SLURM_PARTITION = re.compile(r"[A-Za-z0-9_.,-]+")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # an RFC 1123 label, as Kubernetes names need
_K8S_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_TIME = re.compile(r"([0-9]{1,4}):([0-9]{2})")


def check_tune_args(args: list[str] | tuple[str, ...]) -> list[str]:
    """The words after `--`: a `digitsearch tune` command line without --address (the launcher sets it)."""
    args = list(args)
    if not args:
        raise UserError("no search command: end with `-- tune --space cnn ...` (the `digitsearch tune` arguments to run on the cluster)")
    if args[0].startswith("-"):
        raise UserError(f"unknown option {args[0]!r} (see --help); the search's own options go after `-- tune`")
    if args[0] != "tune":
        raise UserError(f"the command after `--` must start with `tune` (got {args[0]!r}): only a search runs on the cluster, "
                        "e.g. `-- tune --space cnn --trials 50`")
    if any(arg == "--address" or arg.startswith("--address=") for arg in args[1:]):
        raise UserError("leave --address out of the tune arguments: the launcher points the search at the cluster's head itself")
    return args


def check_count(value: int, option: str, minimum: int) -> int:
    if value < minimum:
        raise UserError(f"{option} must be at least {minimum} (got {value})")
    return value


def check_port(value: int, option: str) -> int:
    if not 1 <= value <= 65535:
        raise UserError(f"{option} must be a port number from 1 to 65535 (got {value})")
    if RAY_RESERVED_PORTS[0] <= value <= RAY_RESERVED_PORTS[1]:
        raise UserError(f"{option} {value} is among the ports Ray keeps for itself "
                        f"({RAY_RESERVED_PORTS[0]}-{RAY_RESERVED_PORTS[1]}: client server and workers); choose another")
    return value


def slurm_time(text: str) -> str:
    """HH:MM (hours may exceed 24) as sbatch's HH:MM:SS; sbatch itself would read `01:30` as 1 minute 30 seconds."""
    match = _TIME.fullmatch(text.strip())
    if not match or int(match.group(2)) > 59:
        raise UserError(f"--time must be HH:MM, hours and minutes, e.g. 02:00 or 36:30 (got {text!r})")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == minutes == 0:
        raise UserError("--time must be longer than 00:00")
    return f"{hours:02d}:{minutes:02d}:00"


def tune_command(args: list[str], address: str | None = None) -> str:
    """`digitsearch tune ...` for a shell, every argument quoted; `address` is appended unquoted-by-us (a "$variable")."""
    line = shlex.join(["digitsearch", *args])
    return f"{line} --address {address}" if address else line


def _check_slurm_name(value: str, option: str, pattern: re.Pattern) -> str:
    if not pattern.fullmatch(value):
        raise UserError(f"{option} {value!r} may only hold letters, digits, '.', '_' and '-'"
                        + (" (and ',' between partitions)" if pattern is _SLURM_PARTITION else ""))
    return value


def slurm_script(tune_args: list[str], *, nodes: int, cpus_per_node: int, gpus_per_node: int, time: str,
                 job_name: str = "digitsearch", partition: str | None = None, port: int = DEFAULT_PORT,
                 dashboard_port: int = DEFAULT_DASHBOARD_PORT, setup: list[str] | tuple[str, ...] = (),
                 wait_timeout: int = DEFAULT_WAIT_TIMEOUT) -> str:
    """An sbatch script: Ray head on the first node, workers on the rest, then the search on the head."""
    args = check_tune_args(tune_args)
    check_count(nodes, "--nodes", 1)
    check_count(cpus_per_node, "--cpus-per-node", 1)
    check_count(gpus_per_node, "--gpus-per-node", 0)
    check_count(wait_timeout, "--wait-timeout", 1)
    walltime = slurm_time(time)
    _check_slurm_name(job_name, "--job-name", _SLURM_NAME)
    if partition is not None:
        _check_slurm_name(partition, "--partition", _SLURM_PARTITION)
    check_port(port, "--port")
    check_port(dashboard_port, "--dashboard-port")
    if port == dashboard_port:
        raise UserError(f"--port and --dashboard-port must differ (both {port})")
    setup_lines = [line for text in setup for line in text.splitlines()]

    directives = [
        f"--job-name={job_name}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",  # one Ray node per machine; it gets all the CPUs and GPUs below
        f"--cpus-per-task={cpus_per_node}",
        *([f"--gpus-per-node={gpus_per_node}"] if gpus_per_node else []),
        f"--time={walltime}",
        *([f"--partition={partition}"] if partition else []),
        "--output=%x-%j.out",
    ]
    resources = f"--num-cpus={cpus_per_node} --num-gpus={gpus_per_node}"
    step = f"srun --nodes=1 --ntasks=1 --cpus-per-task={cpus_per_node}" + (f" --gpus-per-node={gpus_per_node}" if gpus_per_node else "")
    search = tune_command(args, '"$head_address"')
    lines = [
        "#!/bin/bash",
        *(f"#SBATCH {d}" for d in directives),
        "",
        "# A digitsearch search on a Ray cluster across this job's nodes (written by `digitsearch cluster slurm`).",
        "# Submit with: sbatch <this file>. Ray starts on every node with srun, as in Ray's \"Deploying on Slurm\".",
        "# The results folder (tune's --results, relative to the submit directory) must be on a filesystem",
        "# every node sees, as the submit directory usually is: trials on other nodes write there too.",
        "",
        "# The environment that has digitsearch and Ray; srun passes it on to every node.",
        *(setup_lines or ["# Nothing is activated: put it here or use --setup, e.g.",
                          "#   source .venv/bin/activate",
                          "#   module load python/3.11 && source ~/envs/digitsearch/bin/activate"]),
        "",
        "set -uo pipefail  # after the setup: some activation scripts use unset variables",
        "",
        "# Ray's token authentication (in recent Ray, e.g. 2.60; older versions ignore these): one token for this job,",
        "# passed by srun to every node and used by the search, so a ~/.ray/auth_token left by a local",
        "# run cannot give the head a token the workers lack. RAY_AUTH_MODE=disabled in the job's environment opts out.",
        'export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"',
        'if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}" ]; then',
        "    RAY_AUTH_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')",
        "    export RAY_AUTH_TOKEN",
        "fi",
        "",
        f"port={port}  # Ray's GCS port on the head node",
        f"dashboard_port={dashboard_port}",
        f"wait_timeout={wait_timeout}  # seconds to wait for every node to join",
        f"expected_nodes={nodes}",
        "",
        'if [ -z "${SLURM_JOB_NODELIST:-}" ]; then',
        '    echo "error: not inside a SLURM job; submit this script with sbatch" >&2',
        "    exit 1",
        "fi",
        'mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        'head_node=${nodes[0]}',
        'head_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)',
        'if [[ "$head_ip" == *" "* ]]; then  # several addresses (IPv6 and IPv4): take the IPv4 one',
        '    for candidate in $head_ip; do',
        '        if [[ "$candidate" == *.*.*.* ]]; then head_ip=$candidate; break; fi',
        '    done',
        '    head_ip=${head_ip%% *}',
        'fi',
        'head_address="$head_ip:$port"',
        'echo "Ray head: $head_node at $head_address"',
        'echo "Dashboard: ssh -L $dashboard_port:localhost:$dashboard_port $head_node, then http://localhost:$dashboard_port"',
        "",
        "# Ends the Ray processes when the script ends (Slurm would also, when the job ends).",
        "trap 'kill $(jobs -p) 2>/dev/null' EXIT",
        "",
        'echo "Starting the Ray head on $head_node"',
        f'{step} -w "$head_node" \\',
        f'    ray start --head --node-ip-address="$head_ip" --port={port} --dashboard-port={dashboard_port} \\',
        f'    {resources} --block &',
        "head_pid=$!",
        "sleep 10",
        "",
        'for ((i = 1; i < ${#nodes[@]}; i++)); do',
        '    echo "Starting a Ray worker on ${nodes[$i]}"',
        f'    {step} -w "${{nodes[$i]}}" \\',
        f'        ray start --address="$head_address" {resources} --block &',
        "    sleep 1",
        "done",
        "",
        "alive_nodes() {  # how many nodes have joined the cluster; 0 while the head is not up",
        "    timeout 30 python3 - \"$head_address\" 2>/dev/null <<'EOF' || echo 0",
        "import sys",
        "import ray",
        "ray.init(address=sys.argv[1], logging_level=\"ERROR\", log_to_driver=False)",
        "print(sum(1 for node in ray.nodes() if node[\"Alive\"]))",
        "EOF",
        "}",
        "",
        "started=$SECONDS",
        "while true; do",
        '    if ! kill -0 "$head_pid" 2>/dev/null; then',
        '        echo "error: the Ray head on $head_node has stopped; its output is above" >&2',
        "        exit 1",
        "    fi",
        '    alive=$(alive_nodes | tail -n 1)',
        '    if [ "$alive" -ge "$expected_nodes" ] 2>/dev/null; then break; fi',
        '    if (( SECONDS - started >= wait_timeout )); then',
        '        echo "error: only ${alive:-0} of $expected_nodes Ray nodes joined within ${wait_timeout}s" >&2',
        '        timeout 30 ray status --address="$head_address" >&2',
        "        exit 1",
        "    fi",
        "    sleep 5",
        "done",
        'echo "All $expected_nodes Ray nodes are up:"',
        'timeout 30 ray status --address="$head_address"',
        "",
        "# The search, on the head node, with its trials spread over the cluster.",
        search,
        "status=$?",
        'echo "digitsearch tune ended with exit code $status"',
        'exit "$status"',
        "",
    ]
    return "\n".join(lines)


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
    check_count(workers, "--workers", 1)
    check_count(cpus_per_worker, "--cpus-per-worker", 1)
    check_count(gpus_per_worker, "--gpus-per-worker", 0)
    check_count(head_num_cpus, "--head-num-cpus", 0)
    check_count(ttl, "--ttl", 0)
    check_memory(memory, "--memory")
    check_memory(head_memory, "--head-memory")
    if not image or not image.strip() or any(c.isspace() for c in image):
        raise UserError("--image is required: a container image with digitsearch and Ray installed "
                        "(the same Ray version on head and workers), e.g. --image registry.example.com/digitsearch:1.0")
    check_k8s_name(job_name, "--job-name")
    if pvc is not None:
        check_k8s_name(pvc, "--pvc")
    if not mount_path.startswith("/"):
        raise UserError(f"--mount-path must be an absolute path (got {mount_path!r})")
    mount = (pvc, mount_path) if pvc else None

    head = _container("ray-head", image, max(1, head_num_cpus), head_memory, 0,
                      ports=[("gcs-server", DEFAULT_PORT), ("dashboard", DEFAULT_DASHBOARD_PORT), ("client", 10001)], mount=mount)
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
            "rayClusterSpec": {
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
            },
        },
    }
    storage = (f"# The PVC {pvc!r} is mounted at {mount_path} on every pod: e.g. --results {mount_path}/results.\n"
               if pvc else
               "# No shared volume is mounted (--pvc CLAIM mounts a ReadWriteMany claim on every pod).\n")
    header = (
        f"# A digitsearch search as a KubeRay RayJob (written by `digitsearch cluster kuberay`).\n"
        f"# Apply with: kubectl apply -f <this file>; follow with: kubectl get rayjob {job_name}\n"
        f"#   and: kubectl logs -f job/{job_name} (the submitter's log is the search's output).\n"
        f"# The cluster ({workers} worker pod{'s' if workers != 1 else ''}) is deleted {ttl}s after the search ends:\n"
        f"# send the results to shared storage (--storage, or --results on a volume every pod mounts),\n"
        f"# or they go with the pods.\n"
        f"{storage}"
    )
    return header + yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=1_000_000)


def write(text: str, output: Path) -> Path:
    """Write a generated file; an existing file is never overwritten."""
    if output.exists():
        raise UserError(f"{output} already exists; remove it or choose another --output")
    if not output.parent.exists():
        raise UserError(f"folder {output.parent} does not exist; create it or choose another --output")
    output.write_text(text)
    return output

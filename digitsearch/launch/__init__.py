"""Taking a search to a cluster: Ray Jobs (submit), a SLURM sbatch script (a template file)
and a KubeRay RayJob manifest. Only jobs.py talks to Ray (its job SDK)."""

"""Everything only a search needs; Ray Tune lives here and nowhere else in the package.

request (SearchRequest: what the CLI and the Python API build), preflight (driver-side checks
before any trial), runner (checks, Ray started early, dispatch), new_search, resume, rounds (one Tune round:
Tuner, callbacks, results), algorithms (Optuna sampler/searcher, ASHA), trainable (the Ray
adapter over core.engine), session (Ray start/connect, log filters), callbacks/ (ledger,
progress printer, TensorBoard). Importing this package imports nothing heavy.
"""

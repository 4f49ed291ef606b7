"""The experiment folder: its layout and names, JSON files, the Optuna study's storage, the
ledger file, the leaderboard, reading trials back, and where a kept-up local Ray is written down
(kept_ray). No Ray, no torch."""

"""The experiment folder: its layout and names, JSON files, the Optuna study's storage, the
ledger file, the leaderboard, and reading trials back. No Ray, no torch."""

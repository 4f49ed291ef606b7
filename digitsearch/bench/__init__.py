"""`digitsearch bench`: trial efficiency, search overhead and the fixed cost per trial, `make demo`
against a bare Optuna + PyTorch loop (bare_loop), scheduler value and start-up, measured in one
run with real `digitsearch tune` processes; --profile adds a py-spy summary."""

"""Tune callbacks the driver runs: the ledger (finished.txt, what --resume counts on), the
progress printer, and the TensorBoard writer."""

"""What a trial and the retrain share: typed configs, tasks, the plain-PyTorch engine, and
building a model from a config and the data. Never imports Ray, the CLI or the store."""

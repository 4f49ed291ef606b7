"""digitsearch: hyperparameter and architecture search for MNIST-like image classifiers."""

__version__ = "0.1.0"

"""Model families. Importing this package registers every family (one module each)."""
from digitsearch.models._registry import (
    InvalidArchitecture,
    count_params,
    create,
    describe,
    family,
    forward_mflops,
    image_hw,
    task_of,
    TASKS,
    list_models,
    register,
)

from digitsearch.models import cnn  # noqa: F401  (registers "cnn")

__all__ = ["InvalidArchitecture", "TASKS", "image_hw", "task_of", "family", "forward_mflops", "count_params", "create", "describe", "list_models", "register"]

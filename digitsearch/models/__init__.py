"""Model families. Importing this package registers every family (one module each)."""
from digitsearch.models._registry import (
    InvalidArchitecture,
    count_params,
    create,
    describe,
    family,
    forward_mflops,
    check_serves,
    image_hw,
    takes,
    task_of,
    TASKS,
    list_models,
    register,
)

from digitsearch.models import cnn  # noqa: F401  (registers "cnn")
from digitsearch.models import transfer  # noqa: F401  (registers "transfer")
from digitsearch.models import lenet, lstm, resnet, vgg  # noqa: F401  (register "lenet", "lstm", "resnet", "vgg")
from digitsearch.models import seq2seq  # noqa: F401  (registers "seq2seq")

__all__ = ["InvalidArchitecture", "check_serves", "takes", "TASKS", "image_hw", "task_of", "family", "forward_mflops", "count_params", "create", "describe", "list_models", "register"]

"""Model families. Importing this package registers every family (one module each)."""
from digitsearch.models import (  # noqa: F401  (register "lenet", "lstm", "resnet", "vgg")
    cnn,  # noqa: F401  (registers "cnn")
    lenet,
    lstm,
    resnet,
    seq2seq,  # noqa: F401  (registers "seq2seq")
    transfer,  # noqa: F401  (registers "transfer")
    vgg,
)
from digitsearch.models._registry import (
    TASKS,
    BadKwarg,
    InvalidArchitecture,
    check_kwargs,
    check_serves,
    count_params,
    create,
    describe,
    family,
    forward_mflops,
    image_hw,
    list_models,
    register,
    takes,
    task_of,
)

__all__ = ["BadKwarg", "InvalidArchitecture", "check_kwargs", "check_serves", "takes", "TASKS", "image_hw",
           "task_of", "family", "forward_mflops", "count_params", "create", "describe", "list_models", "register"]

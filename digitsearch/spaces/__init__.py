"""Search spaces: YAML files that say which hyperparameters a search explores.

A search space file (see ``search_spaces/README.md`` for the full format) names a
model family and an ordered mapping of parameters.  Each parameter is either searched
(``uniform``, ``loguniform``, ``int`` or ``choice``) or a constant, and may carry a
``when`` condition on a parameter declared above it.

The loaded :class:`SearchSpace` drives Optuna define-by-run style:
:meth:`SearchSpace.define_by_run` suggests every active parameter in file order and
returns the active constants, which is exactly what Ray Tune's ``OptunaSearch``
expects from a callable ``space``.  Configs are flat: keys are the parameter names
as written (``cnn.depth``, ``lr``); names never contain ``/`` so Ray does not nest them.

An optional ``start:`` list gives partial configs to evaluate first
(:attr:`SearchSpace.starting_points`, for Ray's ``points_to_evaluate``).

Every problem with a file raises :class:`~digitsearch.errors.UserError` with one line
that names the file, the parameter, the problem and the fix.

The package: ``model`` (Condition, Param, SearchSpace), ``parser`` (reading and
validating a file), ``conditions`` (``when:``), ``start`` (``start:`` points) and
``builtin`` (the built-in folder, :func:`load`, :func:`list_spaces`).
"""

from digitsearch.spaces.builtin import BUILTIN_DIR, list_spaces, load
from digitsearch.spaces.model import CONSTANT, KINDS, MIXED, Condition, Param, SearchSpace

__all__ = [
    "BUILTIN_DIR",
    "CONSTANT",
    "Condition",
    "KINDS",
    "MIXED",
    "Param",
    "SearchSpace",
    "list_spaces",
    "load",
]

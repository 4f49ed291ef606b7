"""Does a retrained member keep what the search promised?

A retrain trains on train+val, so no image is left that it has not seen but the test split,
which stays untouched until the end. The check it can make is one-sided: the search measured
the trial's val_acc on the validation images unseen; the retrained net has trained on them, so
it should score at least as much there. A retrained net below that by more than one validation
image trained worse than the search's trial did (an unlucky draw: the LSTM adder's search
trial scored 1.0000 exact match, one retrain of it 99.34 % on held-out sums). Without a time
limit such a member is trained once more under another seed and the better of the two on those
images is kept; under a time limit the retrain has no time planned for that, and says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from digitsearch import data
from digitsearch.core import engine

RESEED = 1000  # how far a retry's seed is from the member's: clear of the ensemble's reseeds (1, 2, ...)


@dataclass(frozen=True)
class Check:
    """A member's accuracy on the validation images it trained on against the search's on them unseen."""

    seen: float
    promised: float
    images: int

    @property
    def short(self) -> bool:
        return self.seen < self.promised - 1.0 / max(1, self.images) - 1e-9  # one image below: noise

    def line(self, trial_id: str) -> str:
        return (f"retrain check: trial {trial_id} scores {self.seen:.4f} on the {self.images} validation images it "
                f"trained on, below the {self.promised:.4f} its search trial scored on them unseen")


def check(model, bundle: data.Bundle, training, promised: float | None) -> Check | None:
    """The member's Check, or None when the search recorded no val_acc or there is no validation split."""
    if promised is None or bundle.val is None or not len(bundle.val):
        return None
    val = engine.to_tensors(bundle.val.images, bundle.val.labels, training.mean, training.std, training.device,
                            training.task)
    return Check(float(engine.evaluate(model, val)["val_acc"]), float(promised), len(bundle.val))

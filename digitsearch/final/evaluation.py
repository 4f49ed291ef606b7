"""What a retrained model's test predictions become: predictions.csv, and with labels the
accuracy, per-class scores and the confusion matrix (images) or exact-match accuracy (sequences)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from digitsearch.data import labelset
from digitsearch.data.bundle import Bundle
from digitsearch.final.export import write_predictions

PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.csv"


def test_metrics(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    classes = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    return {
        "test_accuracy": float((labels == predicted).mean()),
        "test_images": int(len(labels)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
    }


def image_outputs(out: Path, bundle: Bundle, predicted: np.ndarray) -> dict:
    """Kaggle predictions; with labels, accuracy, per-class scores and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    write_predictions(out / PREDICTIONS_FILE, labelset.decode(predicted, bundle.user_labels))
    if bundle.test.labels is None:
        return {}
    matrix = confusion_matrix(bundle.test.labels, predicted, labels=list(range(bundle.num_classes)))
    pd.DataFrame(matrix, index=bundle.class_names, columns=bundle.class_names).to_csv(
        out / CONFUSION_FILE, index_label="true\\predicted")
    return test_metrics(bundle.test.labels, predicted, bundle.class_names)


def sequence_outputs(out: Path, bundle: Bundle, predicted: np.ndarray) -> dict:
    """Every held-out question with the true and the predicted answer; exact-match accuracy."""
    def text(rows: np.ndarray) -> list[str]:
        return ["".join(bundle.vocab[i] for i in row) for row in rows]

    right = (predicted == bundle.test.labels).all(1)
    pd.DataFrame({"question": text(bundle.test.images), "answer": text(bundle.test.labels),
                  "predicted": text(predicted), "correct": right}).to_csv(out / PREDICTIONS_FILE, index=False)
    symbol_acc = float((predicted == bundle.test.labels).mean())
    return {"test_accuracy": float(right.mean()), "test_sequences": int(len(right)), "test_symbol_accuracy": symbol_acc}


def outputs(out: Path, bundle: Bundle, predicted: np.ndarray) -> dict:
    write = sequence_outputs if bundle.task == "sequence" else image_outputs
    return write(out, bundle, predicted)

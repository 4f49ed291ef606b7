"""`digitsearch predict`: an exported model over a CSV, an IDX folder or a folder of digit images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app
from digitsearch.data.invert import Invert

MODEL = "A model.pt written by `best --retrain`."
INPUT = ("A Kaggle-style CSV (label column optional), a folder of IDX files, or a folder of PNG/JPEG images "
         "of single digits.")
OUTPUT = "Where to write ImageId,Label (file,Label for a folder of images); an existing file is replaced."
INVERT = ("For a folder of images: auto inverts dark ink on light paper to MNIST's white on black "
          "(default: auto).")
PROBS = "Add one prob_<class> column per class (softmax)."


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help=MODEL)],
    input: Annotated[str, typer.Option(help=INPUT)],
    output: Annotated[Path, typer.Option(help=OUTPUT)] = Path("submission.csv"),
    invert: Annotated[Optional[Invert], typer.Option(help=INVERT)] = None,
    probs: Annotated[bool, typer.Option("--probs", help=PROBS)] = False,
):
    """Predict labels for a CSV, IDX folder or folder of digit images; writes Kaggle's ImageId,Label."""
    from digitsearch.final import predict as predicting

    replaced = output.is_file()
    summary = predicting.run(model, input, output, invert=invert.value if invert else None, probs=probs)
    typer.echo(summary + (" (replacing the earlier file)" if replaced else ""))

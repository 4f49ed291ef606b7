"""TorchScript and ONNX copies of a model.pt, for serving without digitsearch.

`best --retrain --export torchscript,onnx` writes model.ts and model.onnx beside model.pt.
Both are made from the saved model.pt (rebuilt on the CPU, in eval mode), so they hold
exactly the weights a `predict` run would use, wherever the retrain trained. Both take
the same input as the PyTorch model: image families standardised pixels (N, 1, H, W)
float32 ((x / 255 - mean) / std, the numbers in the file's metadata); seq2seq one-hot
symbols (N, in_length, vocab) float32. Both return logits (an ensemble, final.ensemble: the log
of its averaged probabilities, which softmax and argmax read the same way). The batch size is free.

Formats are checked before any training starts (`parse`, `check_available`), so a typo
or a missing optional package costs nothing. torch is imported only when writing.
"""
from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

from digitsearch.errors import UserError

# format -> file name beside model.pt
FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}
# torch.onnx.export (the dynamo exporter, torch's default) imports these; onnxruntime runs the file
ONNX_PACKAGES = ("onnx", "onnxscript")
INSTALL_HINT = "pip install .[onnx]"
EXAMPLE_BATCH = 2  # not 1: torch.export would specialise a batch of one into the graph


def parse(text: str | None) -> tuple[str, ...]:
    """'torchscript, ONNX' -> ('torchscript', 'onnx'); unknown or empty -> UserError."""
    if text is None:
        return ()
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UserError(f"--export needs a comma-separated list of formats: {','.join(FILES)}")
    return validate(names)


def validate(names) -> tuple[str, ...]:
    """Known format names, lower-cased, order kept, repeats dropped; an unknown one -> UserError."""
    if isinstance(names, str):  # "onnx" is one name, not four letters
        names = names.split(",")
    names = [str(name).strip().lower() for name in names]
    unknown = [name for name in names if name not in FILES]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; known: {', '.join(FILES)} (comma-separated)")
    return tuple(dict.fromkeys(names))


def check_available(formats: tuple[str, ...]) -> None:
    """ONNX needs optional packages: say which install brings them, before training."""
    if "onnx" not in formats:
        return
    for package in ONNX_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            raise UserError(f"--export onnx needs the package {package!r}, which is not installed; "
                            f"install the ONNX extra: {INSTALL_HINT}") from None


def write(model_file: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write each format's file beside `model_file`; returns their paths.

    Files of formats not asked for this time are removed: they were made from an earlier
    model and would disagree with the model.pt just written.
    """
    from digitsearch.final import export

    for fmt, name in FILES.items():
        if fmt not in formats:
            model_file.with_name(name).unlink(missing_ok=True)
    if not formats:
        return []
    check_available(formats)
    model, meta = export.load_model(model_file)
    example = example_input(meta)
    written = []
    for fmt in formats:
        path = model_file.with_name(FILES[fmt])
        try:
            _WRITERS[fmt](model, example, path, describe(meta))
        except Exception as err:  # the exporters raise many kinds; the user needs which one and why
            path.unlink(missing_ok=True)  # no half-written file beside a good model.pt
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise UserError(f"--export {fmt} failed ({type(err).__name__}: {first})") from None
        written.append(path)
    return written


def example_input(meta: dict):
    """A small batch of the model's input shape (values do not matter: tracing records ops)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    args = meta["model_args"]
    if meta.get("task", "image") == "sequence":
        ids = torch.randint(0, args["vocab_size"], (EXAMPLE_BATCH, args["in_length"]), generator=generator)
        return torch.nn.functional.one_hot(ids, args["vocab_size"]).float()
    from digitsearch import models

    height, width = models.image_hw(meta["image_size"])
    return torch.randn(EXAMPLE_BATCH, args.get("in_channels", 1), height, width, generator=generator)


def describe(meta: dict) -> str:
    """What a user of model.ts / model.onnx needs to feed it and read it, as JSON."""
    keys = ("family", "task", "image_size", "normalisation", "class_names", "labels", "vocab", "experiment")
    described = {key: meta.get(key) for key in keys}
    if meta.get("family") == "ensemble":  # final.ensemble: which nets it averages, over which test-time views
        described["members"] = [{key: m.get(key) for key in ("trial_id", "family", "epochs")} for m in meta["members"]]
        described["tta"] = meta["model_args"]["tta"]["views"]
    return json.dumps(described)


def write_torchscript(model, example, path: Path, description: str) -> None:
    """torch.jit.trace: scripting fails on some families' Python (e.g. lists of tensors),
    tracing records the ops one forward pass runs, which for these eval-mode nets is all of them."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarnings about shapes that are fixed for a given model, and torch's notice
        # that TorchScript is deprecated in favour of torch.export (still loads everywhere)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={"digitsearch.json": description})


def write_onnx(model, example, path: Path, description: str) -> None:
    """torch.onnx.export's dynamo exporter, batch dimension left free, one self-contained file."""
    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation chatter from torch.export internals
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    # the description travels inside the file, as TorchScript's extra file does
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {"digitsearch": description})
    onnx.save(graph, str(path))


_WRITERS = {"torchscript": write_torchscript, "onnx": write_onnx}

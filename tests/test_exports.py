"""TorchScript and ONNX exports: every family's exported file gives the PyTorch model's logits
on real images (max abs difference <= 1e-4), through the library and through
`best --retrain --export`; bad formats and a missing ONNX install end in one line."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_cli, shared_data
from digitsearch import models
from digitsearch.cli import app
from digitsearch.core import engine, tasks
from digitsearch.errors import UserError
from digitsearch.final import export
from digitsearch.final import formats as export_formats

onnxruntime = pytest.importorskip("onnxruntime")  # in the dev and onnx extras; CI installs dev
# torch 2.14 marks TorchScript deprecated (in favour of torch.export); loading still works
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

TOLERANCE = 1e-4
# a small net of every image family (the transfer backbone from scratch: no downloads)
IMAGE_FAMILIES = {
    "cnn": dict(depth=2, filters=[8, 16], batchnorm=True, dense_layers=1, dense=[32], dropout=0.3),
    "lenet": dict(activation="relu", pool="max", batchnorm=True),
    "vgg": dict(blocks=2, convs=[1, 2], base_width=8, batchnorm=True, dense_layers=1, dense=[32]),
    "resnet": dict(stages=2, blocks=1, base_width=8),
    "lstm": dict(hidden=32, layers=2, bidirectional=True),
    "transfer": dict(backbone="mobilenet_v3_small", init="scratch", input_size=32, head_width=32),
}
SEQ2SEQ = dict(encoder_width=32, decoder_width=32, attention=True, reverse_output=True)


def test_every_image_family_is_covered():
    assert set(IMAGE_FAMILIES) | {"seq2seq"} == set(models.list_models())


@pytest.fixture(scope="module")
def real_images():
    """64 test images, uint8 (N, 28, 28): MNIST's when the shared data are here, else sklearn's digits."""
    mnist = shared_data() / "mnist-10k"
    if mnist.is_dir():
        from digitsearch.data import read_images

        return read_images(str(mnist)).images[-64:]
    from digitsearch.data import load

    return load("digits").test.images[:64]


def _save(folder, family: str, kwargs: dict, **meta):
    torch.manual_seed(0)
    model = models.create(family, **kwargs).eval()
    path = folder / "model.pt"
    export.save_model(path, model, family=family, model_args=kwargs, class_names=[str(i) for i in range(10)],
                      **{"mean": 0.13, "std": 0.31, "image_size": 28, **meta})
    return path


def _differences(model_file, x: torch.Tensor) -> dict[str, float]:
    """Max abs logit difference of model.ts and model.onnx against model.pt on `x`."""
    model, _ = export.load_model(model_file)
    expected = engine.predict_logits(model, x).numpy()
    scripted = torch.jit.load(str(model_file.with_name("model.ts")))
    with torch.no_grad():
        traced = scripted(x).numpy()
    session = onnxruntime.InferenceSession(str(model_file.with_name("model.onnx")), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(["logits"], {"input": x.numpy()})
    assert traced.shape == onnx_out.shape == expected.shape
    return {"torchscript": float(np.abs(traced - expected).max()), "onnx": float(np.abs(onnx_out - expected).max())}


@pytest.mark.parametrize("family", sorted(IMAGE_FAMILIES))
def test_image_family_exports_match_pytorch(family, real_images, tmp_path):
    model_file = _save(tmp_path, family, IMAGE_FAMILIES[family])
    written = export_formats.write(model_file, ("torchscript", "onnx"))
    assert [p.name for p in written] == ["model.ts", "model.onnx"]
    x = engine.to_tensors(real_images, None, 0.13, 0.31).x  # the same standardised input as the model's
    differences = _differences(model_file, x)
    print(family, differences)
    assert max(differences.values()) <= TOLERANCE, differences
    # the batch size is free (traced and exported with a batch of 2)
    assert _differences(model_file, x[:1])["onnx"] <= TOLERANCE


def test_seq2seq_exports_match_pytorch(tmp_path):
    """The addition model too: one-hot questions in, (N, 3, vocab) logits out, greedy decoding inside."""
    from digitsearch.data import load

    bundle = load("addition")
    kwargs = {**SEQ2SEQ, "vocab_size": len(bundle.vocab), "in_length": 7, "out_length": 3}
    model_file = _save(tmp_path, "seq2seq", kwargs, task="sequence", image_size=None, vocab=bundle.vocab,
                       mean=0.0, std=1.0)
    export_formats.write(model_file, ("torchscript", "onnx"))
    x = engine.to_tensors(bundle.test.images[:64], None, 0.0, 1.0, task=tasks.SequenceTask(len(bundle.vocab))).x
    differences = _differences(model_file, x)
    print("seq2seq", differences)
    assert max(differences.values()) <= TOLERANCE, differences


def test_exports_carry_the_metadata_and_stale_files_go(tmp_path):
    model_file = _save(tmp_path, "cnn", IMAGE_FAMILIES["cnn"])
    export_formats.write(model_file, ("torchscript", "onnx"))
    extra = {"digitsearch.json": ""}
    torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    assert b'"normalisation": {"mean": 0.13, "std": 0.31}' in extra["digitsearch.json"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert '"family": "cnn"' in session.get_modelmeta().custom_metadata_map["digitsearch"]
    # a later export without onnx removes the model.onnx made from the earlier model
    export_formats.write(model_file, ("torchscript",))
    assert (tmp_path / "model.ts").is_file() and not (tmp_path / "model.onnx").exists()


def test_format_lists_are_checked():
    assert export_formats.parse("TorchScript, onnx,onnx") == ("torchscript", "onnx")
    assert export_formats.parse(None) == ()
    with pytest.raises(UserError, match="unknown export format 'tflite'; known: torchscript, onnx"):
        export_formats.parse("torchscript,tflite")
    with pytest.raises(UserError, match="comma-separated"):
        export_formats.parse(" , ")
    assert export_formats.validate("onnx") == ("onnx",)


def test_onnx_without_its_packages_is_one_line(monkeypatch, tmp_path):
    """As if `pip install .[onnx]` had not been run: refused before any experiment is read."""
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    with pytest.raises(UserError, match=r"pip install \.\[onnx\]"):
        export_formats.check_available(("torchscript", "onnx"))
    export_formats.check_available(("torchscript",))  # TorchScript needs nothing extra
    result = CliRunner().invoke(app, ["best", "--results", str(tmp_path), "--retrain", "--export", "torchscript,onnx"])
    assert result.exit_code == 2, (result.output, result.exception)
    assert_one_line_error(result.stderr, "pip install .[onnx]", "onnxscript")


# --- through the real command line -------------------------------------------------------


@pytest.fixture(scope="module")
def searched(shared_search):
    """The session's shared search, retrained with `--export torchscript,onnx` (conftest)."""
    return shared_search


@pytest.mark.e2e
def test_best_retrain_exports_torchscript_and_onnx(searched):
    from digitsearch.data import load

    run = searched.retrain
    final = searched.folder / "final"
    assert {"model.pt", "model.ts", "model.onnx"} <= {p.name for p in final.iterdir()}
    wrote = next(line for line in run.stdout.splitlines() if line.startswith("wrote "))
    assert "model.onnx" in wrote and "model.ts" in wrote
    _, meta = export.load_model(final / "model.pt")
    images = load("digits").test.images[:64]
    x = engine.to_tensors(images, None, meta["normalisation"]["mean"], meta["normalisation"]["std"]).x
    differences = _differences(final / "model.pt", x)
    print("retrained cnn", differences)
    assert max(differences.values()) <= TOLERANCE, differences


@pytest.mark.e2e
@pytest.mark.parametrize("args,needles", [
    (["--retrain", "--export", "tflite"], ("unknown export format 'tflite'", "torchscript, onnx")),
    (["--export", "onnx"], ("--export needs --retrain",)),
])
def test_bad_export_requests_are_one_line_before_anything_runs(searched, args, needles):
    run = run_cli("best", "--results", str(searched.results), "--name", searched.folder.name, *args)
    assert run.returncode == 2
    assert_one_line_error(run.stderr, *needles)
    assert run.stdout == ""  # refused before the experiment is even read, let alone retrained


@pytest.mark.e2e
def test_a_failed_export_is_one_line_and_keeps_the_retrain(searched, tmp_path, monkeypatch):
    """The exports come last: when one fails, model.pt, metrics.json and the predictions stay."""
    import shutil

    from digitsearch.final import retrain

    copy = tmp_path / searched.folder.name
    shutil.copytree(searched.folder, copy, ignore=shutil.ignore_patterns("final*", "report", "tensorboard"))

    def broken(*args):
        raise RuntimeError("the exporter fell over\nsecond line")

    monkeypatch.setitem(export_formats._WRITERS, "onnx", broken)
    with pytest.raises(UserError) as refused:
        retrain.run(copy, epochs=1, exports=("torchscript", "onnx"))
    message = str(refused.value)
    assert "\n" not in message and "--export onnx failed (RuntimeError: the exporter fell over)" in message
    assert "kept in" in message
    final = copy / "final"
    assert {"model.pt", "metrics.json", "predictions.csv", "model.ts"} <= {p.name for p in final.iterdir()}
    assert not (final / "model.onnx").exists()

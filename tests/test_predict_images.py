"""`predict` on a folder of the user's own digit images: real test digits, turned into what a
scan looks like (black ink on white paper, 100x100, off-centre, PNG and JPEG), come back
recognised; --invert auto decides as a person would; --probs; bad folders end in one line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import assert_one_line_error, run_cli, shared_data
from digitsearch import models
from digitsearch.cli import app
from digitsearch.core import engine
from digitsearch.core.config import TrainSettings
from digitsearch.data import user_images
from digitsearch.final import export

CNN = dict(depth=2, filters=[16, 32], dense_layers=1, dense=[64])
SCANS = 100
# measured with this seed: on MNIST the model gets 0.88 of these 100 held-out digits as they are
# and 0.90 of their scans, agreeing on 0.98 of them (0.945 on all 1,000 held-out digits). On
# sklearn's digits the scans score 0.69 (0.93 as they are): those digits are stretched to fill
# 20x20 rather than scaled by their longer side and centred by mass as MNIST's, and the user's
# images, are. Chance is 0.10.
MIN_ACCURACY = {"mnist": 0.8, "digits": 0.55}
MIN_AGREEMENT = 0.9  # MNIST only: scans and originals get the same label


@pytest.fixture(scope="module")
def digit_sets():
    """(source name, train Split, held-out Split): MNIST's t10k when the shared data are here, else digits."""
    mnist = shared_data() / "mnist-10k"
    if mnist.is_dir():
        from digitsearch.data import read_images

        images = read_images(str(mnist))
        return "mnist", images.subset(np.arange(8000)), images.subset(np.arange(9000, 10_000))
    from digitsearch.data import load

    bundle = load("digits")
    return "digits", bundle.train_and_val(), bundle.test


@pytest.fixture(scope="module")
def model_file(digit_sets, tmp_path_factory):
    """A small cnn trained for a few seconds, saved as `best --retrain` saves it."""
    source, train, _ = digit_sets
    mean, std = train.pixel_stats()
    torch.manual_seed(0)
    model = models.create("cnn", **CNN)
    epochs = 2 if source == "mnist" else 5
    engine.fit(model, engine.to_tensors(train.images, train.labels, mean, std), TrainSettings(), epochs)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    export.save_model(path, model.eval(), family="cnn", model_args=CNN, mean=mean, std=std,
                      class_names=[str(i) for i in range(10)], image_size=28)
    return path


def write_scans(folder, images: np.ndarray, labels: np.ndarray, paper: bool = True):
    """Each digit upscaled to 80x80 at a different place on a 100x100 page: dark ink on white
    paper (paper=True) or as MNIST has it; one JPEG among the PNGs. File names sort as given."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number, (image, label) in enumerate(zip(images, labels)):
        ink = Image.fromarray(255 - image if paper else image).resize((80, 80), Image.Resampling.BILINEAR)
        page = Image.new("L", (100, 100), 255 if paper else 0)
        page.paste(ink, tuple(int(v) for v in rng.integers(0, 21, 2)))
        page.save(folder / f"scan{number:02d}-{label}.{'jpg' if number == 3 else 'png'}")
    return folder


@pytest.fixture(scope="module")
def scans(digit_sets, tmp_path_factory):
    _, _, held_out = digit_sets
    root = tmp_path_factory.mktemp("scans")
    images, labels = held_out.images[:SCANS], held_out.labels[:SCANS]
    paper = write_scans(root / "paper", images, labels)
    return paper, write_scans(root / "screen", images, labels, paper=False), labels


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.e2e
def test_scans_are_recognised_through_the_real_command(digit_sets, model_file, scans, tmp_path):
    paper, _, labels = scans
    out = tmp_path / "mine.csv"
    run = run_cli("predict", "--model", str(model_file), "--input", str(paper), "--output", str(out), "--probs")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"wrote {SCANS} predictions" in run.stdout
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "Label"] + [f"prob_{d}" for d in range(10)]
    assert table["file"].tolist() == sorted(p.name for p in paper.iterdir())
    assert "scan03-" in table["file"][3] and table["file"][3].endswith(".jpg")
    accuracy = float((table["Label"].to_numpy() == labels).mean())
    model, meta = export.load_model(model_file)
    originals = digit_sets[2].images[:SCANS]
    native = engine.predict(model, engine.to_tensors(originals, None, meta["normalisation"]["mean"],
                                                     meta["normalisation"]["std"]))
    agreement = float((table["Label"].to_numpy() == native).mean())
    print(f"{digit_sets[0]}: accuracy {accuracy:.2f} on {SCANS} scans, {(native == labels).mean():.2f} "
          f"on the originals, agreement {agreement:.2f}")
    assert accuracy >= MIN_ACCURACY[digit_sets[0]]
    if digit_sets[0] == "mnist":
        assert agreement >= MIN_AGREEMENT
    probs = table[[f"prob_{d}" for d in range(10)]].to_numpy()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5) and (probs.argmax(1) == table["Label"]).all()


def test_centring_gives_back_mnist_digits(digit_sets, scans):
    """MNIST digits are already cropped, scaled and centred: the scans come back close to the originals."""
    if digit_sets[0] != "mnist":
        pytest.skip("sklearn's digits are not centred the MNIST way")
    _, images = user_images.read_folder(scans[0], 28)
    original = digit_sets[2].images[:SCANS].astype(float)
    assert np.abs(images - original).mean() < 12  # of 255; measured 7.1
    assert images.max() == 255 and images[:, 0].max() == 0  # full contrast, clean top edge


def test_invert_auto_decides_by_the_background(scans, model_file, tmp_path):
    paper, screen, _ = scans
    assert np.array_equal(user_images.read_folder(paper, 28, "auto")[1], user_images.read_folder(paper, 28, "yes")[1])
    assert np.array_equal(user_images.read_folder(screen, 28, "auto")[1], user_images.read_folder(screen, 28, "no")[1])
    for folder, same in ((paper, "yes"), (screen, "no")):
        outputs = {}
        for invert in ("auto", same):
            out = tmp_path / f"{folder.name}-{invert}.csv"
            result = invoke("predict", "--model", model_file, "--input", folder, "--output", out, "--invert", invert)
            assert result.exit_code == 0, result.output
            outputs[invert] = pd.read_csv(out)
        assert outputs["auto"].equals(outputs[same])


def test_probs_on_a_csv_too(model_file, digit_sets, tmp_path):
    from conftest import write_kaggle_csv

    held_out = digit_sets[2]
    source = write_kaggle_csv(tmp_path / "few.csv", held_out.images[:30], held_out.labels[:30])
    out = tmp_path / "out.csv"
    result = invoke("predict", "--model", model_file, "--input", source, "--output", out, "--probs")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["ImageId", "Label"] and len(table) == 30
    assert np.allclose(table.filter(like="prob_").sum(1), 1.0, atol=1e-5)


def test_class_names_name_the_prob_columns(tmp_path):
    labels = np.array([1, 0])
    export.write_predictions(tmp_path / "p.csv", labels, probs=np.array([[0.2, 0.8], [0.9, 0.1]]),
                             class_names=["T-shirt", "Trouser"])
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["ImageId", "Label", "prob_T-shirt", "prob_Trouser"]


def _bad(model_file, folder, *extra, needles):
    result = invoke("predict", "--model", model_file, "--input", folder, "--output", folder.parent / "o.csv", *extra)
    assert result.exit_code == 2, (result.output, result.exception)
    return assert_one_line_error(result.stderr, *needles)


def test_bad_folders_are_one_line(model_file, scans, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _bad(model_file, empty, needles=("empty folder",))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("digits go here")
    _bad(model_file, notes, needles=("no PNG or JPEG images",))
    broken = tmp_path / "broken"
    broken.mkdir()
    Image.open(next(scans[0].glob("*.png"))).save(broken / "a.png")  # a good one first: the bad one is named
    (broken / "b.png").write_bytes(b"not a png at all")
    _bad(model_file, broken, needles=("b.png", "not an image"))
    blank = tmp_path / "blank"
    blank.mkdir()
    Image.new("L", (50, 50), 255).save(blank / "white.png")
    _bad(model_file, blank, needles=("white.png", "no digit found"))


def test_bad_invert_requests_are_one_line(model_file, scans, tmp_path):
    paper = scans[0]
    _bad(model_file, paper, "--invert", "maybe", needles=("--invert", "'auto', 'yes', 'no'"))
    from conftest import write_kaggle_csv

    csv = write_kaggle_csv(tmp_path / "x.csv", np.zeros((2, 28, 28), np.uint8), None)
    _bad(model_file, csv, "--invert", "yes", needles=("--invert applies to a folder of PNG/JPEG images",))


def test_a_numbers_model_refuses_a_folder_of_digits(scans, tmp_path):
    wide = dict(depth=1, filters=[4], num_classes=256, image_size=[28, 84])
    path = tmp_path / "numbers.pt"
    export.save_model(path, models.create("cnn", **wide), family="cnn", model_args=wide, mean=0.1, std=0.3,
                      class_names=[str(i) for i in range(256)], image_size=[28, 84])
    _bad(path, scans[0], needles=("28x84",))


def photo_like(image: np.ndarray, rng) -> Image.Image:
    """A scan as a phone takes it: grey ink on an unevenly lit, noisy, cream page with a few
    dust specks, in colour, as JPEG would store it."""
    light = np.linspace(170, 235, 100)[None, :] + np.linspace(0, 15, 100)[:, None]  # a shadow across the page
    page = light + rng.normal(0, 6, (100, 100))
    ink = np.asarray(Image.fromarray(image).resize((80, 80), Image.Resampling.BILINEAR), dtype=float) / 255
    top, left = (int(v) for v in rng.integers(0, 21, 2))
    region = page[top:top + 80, left:left + 80]
    page[top:top + 80, left:left + 80] = region * (1 - ink) + 50 * ink  # ink is a dark grey, not black
    for row, col in rng.integers(2, 97, (3, 2)):
        page[row:row + 2, col:col + 2] = 60  # specks: 2x2 px of dust
    gray = np.clip(page, 0, 255).astype(np.uint8)
    return Image.merge("RGB", [Image.fromarray(np.clip(gray.astype(int) + shift, 0, 255).astype(np.uint8))
                               for shift in (8, 4, -6)])  # a warm tint


def test_photo_like_pages_read_as_their_clean_scans(digit_sets, scans, model_file, tmp_path):
    """Paper tone, shading, noise, specks, colour and JPEG do not change what the model sees much."""
    rng = np.random.default_rng(1)
    photos = tmp_path / "photos"
    photos.mkdir()
    originals = digit_sets[2].images[:SCANS]
    for number, image in enumerate(originals):
        photo_like(image, rng).save(photos / f"photo{number:02d}.jpg", quality=85)
    _, clean = user_images.read_folder(scans[0], 28)
    _, shot = user_images.read_folder(photos, 28)
    model, meta = export.load_model(model_file)
    norm = meta["normalisation"]["mean"], meta["normalisation"]["std"]
    same = (engine.predict(model, engine.to_tensors(clean, None, *norm))
            == engine.predict(model, engine.to_tensors(shot, None, *norm))).mean()
    print(f"photos: mean abs pixel difference {np.abs(shot.astype(float) - clean).mean():.1f}, same label {same:.2f}")
    # measured: 1.00 with the MNIST model, 0.90 with the digits one (less robust to small shifts)
    assert same >= (0.9 if digit_sets[0] == "mnist" else 0.8)


def test_ink_on_a_transparent_canvas_is_put_on_white(scans, tmp_path):
    """Drawing apps save strokes on transparent pixels whose hidden colour is black."""
    first = sorted(scans[0].glob("*.png"))[0]
    ink = 255 - np.asarray(Image.open(first).convert("L"))
    drawing = Image.merge("RGBA", [Image.new("L", (100, 100), 0)] * 3 + [Image.fromarray(ink)])
    folder = tmp_path / "drawn"
    folder.mkdir()
    drawing.save(folder / "drawn.png")
    expected = user_images.mnist_like(user_images.load_gray(first), 28, "auto", first)
    assert np.abs(user_images.read_folder(folder, 28)[1][0].astype(int) - expected).max() <= 2

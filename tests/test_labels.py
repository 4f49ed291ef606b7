"""Labels as the user wrote them (data.labelset): any label set, words or numbers in any range,
kept as given through the bundle, predictions.csv, model.pt and the Predictor; class names from
the files beside the data; EMNIST's prefixed, transposed IDX files."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from conftest import write_kaggle_csv
from digitsearch import models
from digitsearch.data import labelset, load
from digitsearch.errors import UserError
from digitsearch.final import evaluation, export
from digitsearch.final.predict import Predictor


def _images(count: int, side: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, side, side), dtype=np.uint8)


def _one_line(exc, *needles: str) -> None:
    text = str(exc.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_numbers_stay_numbers_and_sort_numerically():
    values = labelset.as_values(pd.Series(["10", " 2", "7"]), "x.csv")
    assert values.dtype == np.int64 and labelset.learn(values) == [2, 7, 10]


def test_words_sort_as_text_and_encode_decode_round_trip():
    values = labelset.as_values(np.array(["shirt", "bag", "coat", "bag"], dtype=object), "x.csv")
    classes = labelset.learn(values)
    assert classes == ["bag", "coat", "shirt"]
    codes = labelset.encode(values, classes, "x.csv")
    assert codes.tolist() == [2, 0, 1, 0]
    assert labelset.decode(codes, classes).tolist() == ["shirt", "bag", "coat", "bag"]
    assert labelset.decode(codes, None).tolist() == codes.tolist()  # a model file older than labels


@pytest.mark.parametrize("raw, needle", [
    (["3", "seven"], "mix numbers ('3') and words ('seven')"),
    ([1.0, 2.5], "label 2.5"),
    ([1, None], "row 2 has no label"),
])
def test_refused_label_columns(raw, needle):
    with pytest.raises(UserError) as exc:
        labelset.as_values(pd.Series(raw, dtype=object), "x.csv")
    _one_line(exc, "x.csv", needle)


def test_folder_names_may_mix_digits_and_letters():
    values = labelset.as_values(np.array(["0", "A", "9"]), "folder", mixed_ok=True)
    assert labelset.learn(values) == ["0", "9", "A"]
    two = labelset.as_values(np.array(["1", "01"]), "folder", mixed_ok=True)  # two folders stay two classes
    assert labelset.learn(two) == ["01", "1"]


def test_a_label_the_training_data_lacks_is_refused():
    with pytest.raises(UserError) as exc:
        labelset.encode(np.array([1, 4, 9]), [1, 4], "test.csv")
    _one_line(exc, "test.csv", "9", "classes it trained on")


def test_sign_language_labels_keep_their_numbers(tmp_path):
    """24 classes labelled 0..24 without 9, as Sign Language MNIST: no empty class 9."""
    labels = np.tile([k for k in range(25) if k != 9], 10)
    bundle = load(str(write_kaggle_csv(tmp_path / "sign.csv", _images(len(labels)), labels)))
    assert bundle.num_classes == 24
    assert bundle.user_labels == [k for k in range(25) if k != 9]
    assert bundle.class_names[9] == "10"
    assert any("labels kept as written: 24 classes" in note for note in bundle.notes)
    everything = np.concatenate([bundle.train.labels, bundle.val.labels, bundle.test.labels])
    assert set(everything.tolist()) == set(range(24))  # class indices, every one used


def test_word_labels_from_a_csv_and_a_test_csv_with_an_unknown_word(tmp_path):
    words = np.array(["shirt", "bag", "coat"] * 12)
    train = write_kaggle_csv(tmp_path / "clothes.csv", _images(len(words)), words)
    bundle = load(str(train))
    assert bundle.user_labels == ["bag", "coat", "shirt"] and bundle.class_names == ["bag", "coat", "shirt"]
    test = write_kaggle_csv(tmp_path / "test.csv", _images(3, seed=1), np.array(["bag", "shoe", "coat"]))
    with pytest.raises(UserError) as exc:
        load(str(train), test=str(test))
    _one_line(exc, "test.csv", "'shoe'")


def test_a_course_subset_labelled_3_to_7_gets_names_from_classes_txt(tmp_path):
    labels = np.tile(np.arange(3, 8), 8)
    write_kaggle_csv(tmp_path / "subset.csv", _images(len(labels)), labels)
    (tmp_path / "classes.txt").write_text("\n".join(f"name{n}" for n in range(10)) + "\n")  # one per label 0..9
    bundle = load(str(tmp_path / "subset.csv"))
    assert bundle.user_labels == [3, 4, 5, 6, 7]
    assert bundle.class_names == ["name3", "name4", "name5", "name6", "name7"]
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(UserError) as exc:
        load(str(tmp_path / "subset.csv"))
    _one_line(exc, "classes.txt", "2 names", "5 classes")


def _write_idx(path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_emnist_letters_folder(tmp_path):
    """Labels 1..26 with no class 0, files named emnist-letters-*, images transposed, names from
    the mapping file beside them."""
    folder = tmp_path / "emnist"
    folder.mkdir()
    labels = np.tile(np.arange(1, 27), 4)
    images = _images(len(labels), side=28)
    images[:, 0, 5] = 255  # a mark in the first row: transposed on disk, it is in the first column
    images[:, 5, 0] = 0
    for role, count in (("train", 78), ("test", 26)):
        part = slice(0, count) if role == "train" else slice(78, 104)
        _write_idx(folder / f"emnist-letters-{role}-images-idx3-ubyte.gz", images[part].transpose(0, 2, 1), 0x803)
        _write_idx(folder / f"emnist-letters-{role}-labels-idx1-ubyte.gz", labels[part], 0x801)
    (folder / "emnist-letters-mapping.txt").write_text("".join(f"{k} {64 + k} {96 + k}\n" for k in range(1, 27)))
    bundle = load(str(folder))
    assert bundle.user_labels == list(range(1, 27)) and bundle.num_classes == 26
    assert bundle.class_names[:2] == ["A/a", "B/b"]
    assert (bundle.test.images[:, 0, 5] == 255).all() and (bundle.test.images[:, 5, 0] == 0).all()
    assert any("transposed" in note for note in bundle.notes)


def test_two_idx_sets_in_one_folder_are_refused(tmp_path):
    for prefix in ("emnist-letters-", "emnist-digits-"):
        _write_idx(tmp_path / f"{prefix}train-images-idx3-ubyte.gz", _images(4, side=28), 0x803)
    with pytest.raises(UserError) as exc:
        load(str(tmp_path))
    _one_line(exc, "several IDX sets", "emnist-digits-*", "emnist-letters-*")


def test_predictions_and_the_model_file_speak_the_users_labels(tmp_path):
    """predictions.csv and Predictor.predict give the words back; model.pt and its description carry them."""
    words = np.array(["shirt", "bag", "coat"] * 12)
    bundle = load(str(write_kaggle_csv(tmp_path / "clothes.csv", _images(len(words)), words)))
    out = tmp_path / "final"
    out.mkdir()
    evaluation.outputs(out, bundle, bundle.test.labels)
    written = pd.read_csv(out / evaluation.PREDICTIONS_FILE)
    assert sorted(set(written["Label"])) == ["bag", "coat", "shirt"]
    assert labelset.encode(written["Label"].to_numpy(), bundle.user_labels, "x").tolist() == bundle.test.labels.tolist()
    args = dict(num_classes=3, image_size=8, depth=2, filters=[8, 16], batchnorm=True, dense_layers=1, dense=[32])
    model = models.create("cnn", **args).eval()
    export.save_model(out / "model.pt", model, family="cnn", model_args=args,
                      mean=0.5, std=0.3, class_names=bundle.class_names, labels=bundle.user_labels, image_size=8)
    predictor = Predictor.load(out / "model.pt")
    predicted, probs = predictor.predict(bundle.test.images)
    assert set(predicted.tolist()) <= {"bag", "coat", "shirt"} and probs.shape == (len(bundle.test), 3)
    assert predictor.labels == ["bag", "coat", "shirt"]


def _class_folders(root, names: list[str], per_class: int = 6):
    from PIL import Image

    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(_images(per_class, side=28, seed=k)):
            Image.fromarray(image // 4).save(root / name / f"{i}.png")  # dark: kept as they are, not inverted
    return root


def test_class_folders_as_a_dataset(tmp_path):
    """Folder names that are numbers become number labels, sorted numerically; the rest words."""
    bundle = load(str(_class_folders(tmp_path / "numbers", ["10", "2", "7"])))
    assert bundle.user_labels == [2, 7, 10] and bundle.class_names == ["2", "7", "10"]
    assert bundle.train.images.shape[1:] == (28, 28)
    assert any("kept as they are: 28x28 grayscale" in note for note in bundle.notes)
    words = load(str(_class_folders(tmp_path / "words", ["dog", "cat"])))
    assert words.user_labels == ["cat", "dog"]
    assert len(words.train) + len(words.val) + len(words.test) == 12


def test_class_folders_with_a_test_folder(tmp_path):
    _class_folders(tmp_path / "data" / "train", ["a", "b"])
    _class_folders(tmp_path / "data" / "test", ["b"], per_class=2)
    bundle = load(str(tmp_path / "data"))
    assert len(bundle.test) == 2 and bundle.test.labels.tolist() == [1, 1]


def test_a_thousand_classes_load_and_draw(tmp_path):
    """1,000 classes labelled 5000..5999: no class lost, splits too small to stratify say so, and
    the confusion matrix stays a figure of at most 20 inches with every 17th class named."""
    from digitsearch.viz import plots

    labels = np.repeat(np.arange(5000, 6000), 3)
    bundle = load(str(write_kaggle_csv(tmp_path / "many.csv", _images(len(labels)), labels)))
    assert bundle.num_classes == 1000 and bundle.user_labels[0] == 5000
    assert any("random (too few images to stratify)" in note for note in bundle.notes)
    fig = plots.confusion_matrix_figure(np.eye(1000, dtype=np.int64), bundle.class_names)
    assert max(fig.get_size_inches()) <= plots.MAX_MATRIX_INCHES
    assert len(fig.axes[0].get_xticks()) == 59


def test_a_40_class_idx_folder_labelled_1_to_40(tmp_path):
    labels = np.tile(np.arange(1, 41), 5)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", _images(len(labels), side=28), 0x803)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, 0x801)
    bundle = load(str(tmp_path))
    assert bundle.num_classes == 40 and bundle.user_labels == list(range(1, 41))
    assert bundle.class_names[0] == "1" and not any("transposed" in note for note in bundle.notes)

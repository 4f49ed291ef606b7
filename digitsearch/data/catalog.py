"""The registered datasets and their one-line descriptions: pure Python, so listing them
(`digitsearch datasets`) imports neither numpy nor pandas."""
from __future__ import annotations

# name -> (torchvision class, description) of the IDX sets found on disk or downloaded by name
REGISTERED_IDX = {
    "mnist": ("MNIST", "MNIST handwritten digits, 60,000 train + 10,000 test, 28x28"),
    "fashion-mnist": ("FashionMNIST", "Zalando Fashion-MNIST clothing, 60,000 train + "
                      "10,000 test, 28x28, 10 classes"),
    "kmnist": ("KMNIST", "Kuzushiji-MNIST cursive Japanese characters, 60,000 train + "
               "10,000 test, 28x28, 10 classes"),
}

# Datasets whose images stay valid examples of their class when mirrored left-right (clothing);
# digits and characters do not (a mirrored 2 or 7 is no digit). Horizontal flips, in training
# and at test time, are used only on these: a space cannot switch them on for digits.
MIRROR_SAFE = ("fashion-mnist",)

DATASETS = {
    "digits": "scikit-learn's bundled 1,797 8x8 digits, upscaled to 28x28 like MNIST "
              "(offline, seconds to train)",
    **{name: info[1] for name, info in REGISTERED_IDX.items()},
    "svhn": "Street View House Numbers digits (73,257 train + 26,032 test, unbalanced) as "
            "28x28 grayscale; also any folder holding train_32x32.mat / test_32x32.mat",
    "numbers": "the numbers 0-255 (256 classes) as 28x84 images of digits side by side, built "
               "from a base digit set (--base digits|mnist|svhn|PATH, default digits: offline)",
    "addition": "sequence task: all 65,536 questions 'a+b' (a, b in 0-255) -> the sum, "
                "as symbols of a 12-character alphabet; no pair in two splits",
}


def list_datasets() -> dict[str, str]:
    """Registered dataset name -> one-line description."""
    return dict(DATASETS)

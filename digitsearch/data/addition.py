"""`addition`: a sequence task, "a+b" -> the sum, for every pair of numbers 0..255.

Each question is the text f"{a}+{b}" right-aligned (left-padded with spaces) to
IN_LENGTH characters and each answer the sum right-aligned to OUT_LENGTH characters,
e.g. "  7+255" -> "262" and "    3+4" -> "  7". Characters are stored as symbol ids,
the index of the character in VOCAB; the models one-hot encode them.

All 65,536 pairs exist exactly once. One seeded permutation of them is cut into test
(a fixed TEST_COUNT pairs), validation (`val_fraction` of the rest) and train, so no
pair is in two splits and test answers are never seen in training.
"""

from __future__ import annotations

import numpy as np

from digitsearch.data.bundle import Bundle, Split

VOCAB = "0123456789+ "
MAX_OPERAND = 255
IN_LENGTH = len(f"{MAX_OPERAND}+{MAX_OPERAND}")  # 7
OUT_LENGTH = len(str(2 * MAX_OPERAND))  # 3
PAIRS = (MAX_OPERAND + 1) ** 2  # 65,536
TEST_COUNT = round(PAIRS * 0.1)  # 6,554 pairs, a fixed 10%

# byte value -> symbol id (255 marks a character outside VOCAB)
_LOOKUP = np.full(256, 255, dtype=np.uint8)
_LOOKUP[np.frombuffer(VOCAB.encode("ascii"), dtype=np.uint8)] = np.arange(len(VOCAB))
_CHARS = np.frombuffer(VOCAB.encode("ascii"), dtype=np.uint8)


def encode(texts: str | list[str], length: int) -> np.ndarray:
    """Text(s) right-aligned to `length` characters -> uint8 symbol ids, (length,) or (N, length).

    ValueError for a text longer than `length` or a character outside VOCAB.
    """
    single = isinstance(texts, str)
    items = [texts] if single else list(texts)
    if any(len(t) > length for t in items):
        raise ValueError(f"a text is longer than {length} characters")
    raw = "".join(t.rjust(length) for t in items).encode("ascii", errors="replace")
    ids = _LOOKUP[np.frombuffer(raw, dtype=np.uint8)]
    if (ids == 255).any():
        raise ValueError(f"characters outside the alphabet {VOCAB!r}")
    ids = ids.reshape(len(items), length)
    return ids[0] if single else ids


def encode_question(a: int, b: int) -> np.ndarray:
    """uint8 symbol ids (IN_LENGTH,) of the question "a+b", e.g. (7, 25) -> "   7+25"."""
    if not (0 <= int(a) <= MAX_OPERAND and 0 <= int(b) <= MAX_OPERAND):
        raise ValueError(f"operands must be in 0..{MAX_OPERAND}, got {a} and {b}")
    return encode(f"{int(a)}+{int(b)}", IN_LENGTH)


def encode_answer(total: int) -> np.ndarray:
    """int64 symbol ids (OUT_LENGTH,) of the answer, e.g. 7 -> "  7"."""
    return encode(str(int(total)), OUT_LENGTH).astype(np.int64)


def decode(ids) -> str | list[str]:
    """Symbol ids -> text: (L,) gives one string, (N, L) a list of strings (padding kept).

    Also accepts (N, L, len(VOCAB)) scores/logits/one-hots (argmax over the last axis),
    so model outputs can be decoded directly. ValueError for ids outside the alphabet.
    """
    array = np.asarray(ids)
    if array.ndim == 3:
        array = array.argmax(axis=-1)
    if array.ndim not in (1, 2):
        raise ValueError(f"expected ids of shape (L,) or (N, L), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= len(VOCAB)):
        raise ValueError(f"symbol ids must be in 0..{len(VOCAB) - 1}")
    chars = _CHARS[array.astype(np.int64)]
    if array.ndim == 1:
        return chars.tobytes().decode("ascii")
    return [row.tobytes().decode("ascii") for row in chars]


def all_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair, in order (0,0), (0,1), ..., (255,255): (pairs int64 (PAIRS, 2),
    questions uint8 (PAIRS, IN_LENGTH), answers int64 (PAIRS, OUT_LENGTH))."""
    a, b = np.divmod(np.arange(PAIRS), MAX_OPERAND + 1)
    questions = encode([f"{x}+{y}" for x, y in zip(a.tolist(), b.tolist())], IN_LENGTH)
    answers = encode([str(s) for s in (a + b).tolist()], OUT_LENGTH).astype(np.int64)
    return np.column_stack([a, b]).astype(np.int64), questions, answers


def load(val_fraction: float, seed: int) -> Bundle:
    """The addition Bundle: seeded, disjoint train / validation / test pairs."""
    _, questions, answers = all_pairs()
    order = np.random.default_rng(seed).permutation(PAIRS)
    rest = PAIRS - TEST_COUNT
    val_count = min(max(1, round(rest * val_fraction)), rest - 1)
    test_index = order[:TEST_COUNT]
    val_index = order[TEST_COUNT:TEST_COUNT + val_count]
    train_index = order[TEST_COUNT + val_count:]

    def split(index: np.ndarray) -> Split:
        index = np.sort(index)  # pair order inside a split; the trainer shuffles anyway
        return Split(questions[index], answers[index])

    train, val, test = split(train_index), split(val_index), split(test_index)
    notes = [
        f"addition: every pair a+b with a, b in 0..{MAX_OPERAND} ({PAIRS:,} pairs); question "
        f"'a+b' right-aligned to {IN_LENGTH} characters, answer the sum right-aligned to "
        f"{OUT_LENGTH} (e.g. '    3+4' -> '  7'), as ids into the {len(VOCAB)}-symbol alphabet "
        f"{VOCAB!r}",
        f"split: one seeded permutation (seed {seed}) of all pairs: {len(test):,} test pairs "
        f"(fixed 10%), then {val_fraction * 100:g}% of the rest for validation: "
        f"{len(train):,} train / {len(val):,} val / {len(test):,} test; no pair is in two splits",
    ]
    return Bundle(name="addition", train=train, val=val, test=test, class_names=list(VOCAB),
                  notes=notes, task="sequence", vocab=VOCAB)

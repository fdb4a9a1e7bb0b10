"""Fixtures of the training tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_rows, write_csv
from training.embed import save


@pytest.fixture()
def data_csv(tmp_path):
    """600 synthetic labelled rows (make_rows) as a CSV file."""
    return write_csv(tmp_path / "train.csv", make_rows(600))


@pytest.fixture()
def noisy_csv(tmp_path, data_csv):
    """The same rows with shuffled labels: a challenger trained on it learns noise."""
    df = pd.read_csv(data_csv)
    df["shares"] = df["shares"].sample(frac=1.0, random_state=3).to_numpy()
    return write_csv(tmp_path / "noisy.csv", df.to_dict("records"))


@pytest.fixture()
def tiny_vectors(tmp_path):
    """A hand-made 'embedding' file: one axis for disaster words, one for leisure words."""
    words = ["earthquake", "kills", "war", "floods", "court", "cats", "cake", "quiz", "haircut", "brunch"]
    vecs = np.zeros((len(words), 4), dtype=np.float16)
    for i, w in enumerate(words):
        vecs[i, 0 if i < 5 else 1] = 1.0
        vecs[i, 2 + i % 2] = 0.25
    path = tmp_path / "vec.npz"
    save(path, {"words": np.asarray(words, dtype=object), "vectors": vecs,
                "provenance": {"base_model": "test", "base_model_licence": "n/a"}})
    return path

"""Static embeddings: numpy-only featurizer, carried inside the model, reused by nightly retrains."""

from __future__ import annotations

import numpy as np

from iscore import registry
from training import cli
from training.embed import load_embedder
from tests.conftest import make_rows, write_csv


def test_static_embedder_is_mean_of_known_words_normalised(tmp_path, tiny_vectors):
    emb, prov = load_embedder(tiny_vectors)
    emb.fit(None)
    X = emb.transform(["Earthquake KILLS", "cats and cake", "nothing known here", ""])
    assert X.shape == (4, 4) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X[:2], axis=1), 1.0, rtol=1e-5)
    assert X[0, 0] > 0.9 and X[1, 1] > 0.9
    assert np.all(X[2:] == 0)
    assert prov["base_model"] == "test"


def test_embedder_weight_scales_features(tmp_path, tiny_vectors):
    emb, _ = load_embedder(tiny_vectors)
    a = emb.fit(None).transform(["war"])
    b = emb.set_params(weight=3.0).fit(None).transform(["war"])
    np.testing.assert_allclose(b, 3 * a, rtol=1e-6)


def test_pickled_embedder_keeps_float16_only(tmp_path, tiny_vectors):
    import pickle

    emb, _ = load_embedder(tiny_vectors)
    emb.fit(None).transform(["war"])  # fills the float32 cache
    state = pickle.loads(pickle.dumps(emb)).__dict__
    assert "_v32" not in state and state["vectors"].dtype == np.float16


def test_train_with_embeddings_records_provenance_and_retrain_reuses_them(tmp_path, capsys, data_args, tiny_vectors):
    reg = tmp_path / "models"
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    vec = tiny_vectors
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args,
                     "--embeddings", str(vec), "--promote"]) == cli.EXIT_OK
    first = registry.load_current(reg)
    assert first.manifest["embeddings"]["base_model"] == "test"
    assert first.manifest["features"]["semantic"] == 4
    assert cli.main(["--registry", str(reg), "retrain", "--data", str(data), *data_args,
                     "--tolerance", "1"]) == cli.EXIT_OK
    second = registry.load_current(reg)
    assert second.version != first.version
    assert second.manifest["embeddings"]["reused_from"] == first.version
    assert second.manifest["features"]["semantic"] == 4

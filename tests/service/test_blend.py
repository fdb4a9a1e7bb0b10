"""The popularity/importance dial over HTTP (#14 item 7): ?blend= and ISCORE_BLEND on /v1/score and /v1/rank."""

from __future__ import annotations

import numpy as np
import pytest

from iscore.model import ModelConfig, blends, build_pipeline
from iscore.scoring import score
from iscore.settings import Settings, SettingsError
from tests.conftest import fit_tiny, publish_tiny

HARD = ["Parliament votes on budget as talks collapse", "Earthquake kills dozens in mountain towns",
        "Minister resigns over corruption inquiry", "Troops cross border as ceasefire fails"]
SOFT = ["Ten cosy cafes for a rainy weekend", "Celebrity shows off new kitchen in video",
        "Quiz: which cake are you", "Cute puppy learns to surf at the beach"]


@pytest.fixture(scope="module")
def two_heads():
    """A pipeline with an engagement head that favours soft news and a desk head that knows hard news."""
    texts, y = [], []
    for i in range(240):
        hard = i % 2 == 0
        texts.append((HARD if hard else SOFT)[(i // 2) % 4] + f" {i % 7}")
        y.append([20.0 if hard else 80.0, 100.0 if hard else 0.0])
    # Raw text: 240 rows of eight headlines are too few for the cleaner to learn which words are names.
    pipe = build_pipeline(ModelConfig(min_df=1, desk_weight=3.0, use_source=False, clean_text=False))
    return pipe.fit([{"text": t} for t in texts], np.asarray(y))


@pytest.fixture()
def two_head_app(make_app, tmp_path, two_heads):
    reg = tmp_path / "models"
    publish_tiny(reg, two_heads)
    return make_app(model_dir=reg)


def _scores(client, blend=None, route="/v1/score"):
    url = route + (f"?blend={blend}" if blend else "")
    return client.post(url, json={"headlines": [HARD[1], SOFT[0]]})


def test_each_blend_ranks_by_its_own_heads(two_head_app, two_heads):
    client = two_head_app.test_client()
    default = _scores(client).get_json()
    assert default["blend"] == "editorial"
    ed = [s["i_score"] for s in default["scores"]]
    eng_reply = _scores(client, "Engagement").get_json()
    assert eng_reply["blend"] == "engagement"
    eng = [s["i_score"] for s in eng_reply["scores"]]
    assert ed[0] > ed[1] and eng[0] < eng[1]  # the dial turns the ranking round
    # The reply is the core's score for that blend (rounded), and /v1/rank uses the same dial.
    expected = score(two_heads, [{"text": HARD[1], "source": ""}, {"text": SOFT[0], "source": ""}], "engagement")
    assert eng == pytest.approx(np.round(expected, 1).tolist(), abs=0.051)
    ranked = _scores(client, "engagement", "/v1/rank").get_json()
    assert ranked["blend"] == "engagement" and ranked["ranked"][0]["text"] == SOFT[0]


def test_the_setting_picks_the_default_blend(make_app, tmp_path, two_heads):
    reg = tmp_path / "models"
    publish_tiny(reg, two_heads)
    client = make_app(model_dir=reg, blend="engagement").test_client()
    assert _scores(client).get_json()["blend"] == "engagement"
    assert _scores(client, "editorial").get_json()["blend"] == "editorial"


def test_unknown_blends_are_422_and_unoffered_ones_409_with_what_is_offered(make_app, tmp_path, two_head_app):
    r = _scores(two_head_app.test_client(), "popular")
    assert r.status_code == 422 and r.get_json()["details"] == [
        {"field": "blend", "problem": "must be one of editorial, engagement", "got": "popular"}]
    # A one-head model (no desk labels) offers only engagement; the editorial default quietly uses it.
    reg = tmp_path / "one"
    publish_tiny(reg, fit_tiny()[0])
    client = make_app(model_dir=reg).test_client()
    assert blends(fit_tiny()[0]) == ("engagement",)
    assert _scores(client).get_json()["blend"] == "engagement"
    r = _scores(client, "editorial")
    assert r.status_code == 409 and r.get_json()["error"] == "blend_unavailable"
    assert r.get_json()["details"] == {"got": "editorial", "offered": ["engagement"]}


def test_blend_setting_is_validated():
    with pytest.raises(SettingsError, match="ISCORE_BLEND"):
        Settings(blend="popularity")
    assert Settings.from_env({"ISCORE_BLEND": "engagement"}).blend == "engagement"

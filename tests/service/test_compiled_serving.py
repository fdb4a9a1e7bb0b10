"""The service scores with the compiled form of a version, falls back to its pipeline, or refuses it."""

from __future__ import annotations

import logging

import pytest

from iscore.model import ModelConfig, build_pipeline
from iscore.registry import ArtifactError
from service.holder import ModelHolder
from tests.conftest import publish_tiny


def _out_of_core(tiny_model):
    """A fitted pipeline with a part the compiled scorer does not know (hashed words)."""
    df = tiny_model[1]
    return build_pipeline(ModelConfig(out_of_core=True)).fit(df, df["y"].to_numpy())


def test_the_served_model_has_a_verified_compiled_scorer(model_dir):
    loaded = ModelHolder(model_dir).refresh()
    assert loaded is not None and loaded.scorer is not None
    assert loaded.scorer.pipeline is loaded.pipeline


def test_an_unknown_part_is_served_by_the_pipeline_with_a_log_line_and_a_metric(make_app, model_dir, tiny_model,
                                                                                  ):
    version = publish_tiny(model_dir, _out_of_core(tiny_model))
    records: list[logging.LogRecord] = []
    seen = logging.Handler(logging.WARNING)
    seen.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("iscore.model").addHandler(seen)
    try:
        app = make_app()
    finally:
        logging.getLogger("iscore.model").removeHandler(seen)
    model = app.extensions["iscore"].holder.get()
    assert model.version == version and model.scorer is None
    warned = [r for r in records if r.getMessage().startswith("scoring with the pipeline")]
    assert warned and warned[0].fields["version"] == version and warned[0].levelname == "WARNING"
    assert "HashingVectorizer is not ColumnPicker -> TfidfVectorizer" in warned[0].fields["reason"]
    c = app.test_client()
    r = c.post("/v1/score?explain=true", json={"headlines": ["Floods kill dozens in Kenya", "Cute cats"]})
    assert r.status_code == 200 and len(r.get_json()["scores"]) == 2
    assert "iscore_model_uncompiled_total 1.0" in c.get("/metrics").get_data(as_text=True)


def test_a_compiled_form_that_disagrees_refuses_the_version(model_dir, tiny_model, monkeypatch):
    import service.holder as holder_module
    from iscore.compiled import compile_pipeline

    holder = ModelHolder(model_dir)
    served = holder.refresh()

    def wrong(pipeline, c_reader=True):
        scorer = compile_pipeline(pipeline, c_reader)
        scorer.intercepts[scorer.blends[0]] += 0.5  # a read-out that no longer matches the pipeline
        return scorer

    monkeypatch.setattr(holder_module, "compile_pipeline", wrong)
    publish_tiny(model_dir, tiny_model[0])
    with pytest.raises(ArtifactError, match="compiled scorer differs from the pipeline"):
        holder.reload()
    assert holder.get() is served  # the refused version never served


def test_replies_are_the_same_with_and_without_the_compiled_scorer(app, monkeypatch):
    import dataclasses

    body = {"headlines": [{"text": "Earthquake kills dozens in coastal city", "source": "reuters"},
                          "Ten recipes for a quick weekday dinner", "Trump", "www.example.com/news",
                          {"text": "Le gouvernement annonce une nouvelle réforme des retraites", "source": "bbc"}]}
    from iscore.model import blends

    holder = app.extensions["iscore"].holder
    c = app.test_client()
    urls = [f"/v1/score?explain=true&blend={b}" for b in blends(holder.get().pipeline)] + ["/v1/score?explain=true"]
    compiled = [c.post(url, json=body).get_json() for url in urls]
    assert holder.get().scorer is not None
    monkeypatch.setattr(holder, "_model", dataclasses.replace(holder.get(), scorer=None))
    assert [c.post(url, json=body).get_json() for url in urls] == compiled


def test_the_compiled_scorer_can_be_turned_off(make_app):
    app = make_app(compiled_scorer=0)
    assert app.extensions["iscore"].holder.get().scorer is None
    r = app.test_client().post("/v1/score", json={"headlines": ["Floods kill dozens in Kenya"]})
    assert r.status_code == 200


def test_reading_text_in_c_can_be_turned_off(make_app):
    pytest.importorskip("iscore._speedups", reason="the C extension was not built (no C compiler at install)")
    body = {"headlines": ["Floods kill dozens in Kenya", "Élection présidentielle", "Storm hits coast"]}
    on, off = make_app(), make_app(c_reader=0)
    assert on.extensions["iscore"].holder.get().scorer.reader is not None
    assert off.extensions["iscore"].holder.get().scorer.reader is None
    assert (on.test_client().post("/v1/score", json=body).get_json()
            == off.test_client().post("/v1/score", json=body).get_json())


def test_the_setting_takes_only_0_or_1():
    from iscore.settings import Settings, SettingsError

    assert Settings.from_env({"ISCORE_COMPILED_SCORER": "0"}).compiled_scorer == 0
    with pytest.raises(SettingsError, match="ISCORE_COMPILED_SCORER"):
        Settings.from_env({"ISCORE_COMPILED_SCORER": "2"})
    assert Settings.from_env({"ISCORE_C_READER": "0"}).c_reader == 0
    with pytest.raises(SettingsError, match="ISCORE_C_READER"):
        Settings.from_env({"ISCORE_C_READER": "yes"})


def test_a_compiled_form_that_cannot_score_refuses_the_version(model_dir, tiny_model, monkeypatch):
    import service.holder as holder_module
    from iscore.compiled import compile_pipeline

    holder = ModelHolder(model_dir)
    served = holder.refresh()

    def broken(pipeline, c_reader=True):
        scorer = compile_pipeline(pipeline, c_reader)
        scorer.part("stats").stats = None  # a part whose per-record method is gone
        return scorer

    monkeypatch.setattr(holder_module, "compile_pipeline", broken)
    publish_tiny(model_dir, tiny_model[0])
    with pytest.raises(ArtifactError, match="compiled scorer failed on the verification records: AttributeError"):
        holder.reload()
    assert holder.get() is served

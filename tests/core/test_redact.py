"""iscore/redact.py: credentials in URLs and absolute paths never survive, whatever surrounds them."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from iscore.redact import public_argv, public_text, public_value, redact_url, strip_paths
from iscore.redact import redact_url as redact

# What people put in user names and passwords, unencoded: anything printable but white space
# and quotes (those end a shell word), including "@", ":", "/", "%" and "#".
secret_chars = st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_categories=("Cc", "Zs", "Cs"),
                             blacklist_characters="'\"<>")
secrets = st.text(secret_chars, min_size=1, max_size=24)
hosts = st.from_regex(r"\A[a-z][a-z0-9\-]{0,15}(\.[a-z0-9]{1,8}){0,2}(:[0-9]{1,5})?\Z")
schemes = st.sampled_from(["postgresql", "postgresql+psycopg", "redis", "rediss", "mysql+pymysql", "https", "amqp"])
words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
KEY_WORD = re.compile(r"(?i)(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)")
HYP = settings(max_examples=300, deadline=None)


@HYP
@given(scheme=schemes, user=secrets, password=secrets, host=hosts, tail=st.sampled_from(["", "/db", "/0?x=1"]),
       before=words, after=words)
def test_credentials_in_a_url_embedded_anywhere_are_redacted(scheme, user, password, host, tail, before, after):
    url = f"{scheme}://{user}:{password}@{host}{tail}"
    text = f"{before} --feedback-db {url} {after}"
    assume(password not in before + after + host + tail + scheme + " --feedback-db ***://@")
    out = redact_url(text)
    assert password not in out
    assert f"{scheme}://***@" in out
    if not KEY_WORD.match(host):
        assert f"{scheme}://***@{host}{tail}" in out  # only the credentials go


@HYP
@given(text=words)
def test_redaction_is_idempotent_and_leaves_plain_text_alone(text):
    once = redact_url(text)
    assert redact_url(once) == once
    if "://" not in text and "=" not in text and ":" not in text:
        assert once == text


@pytest.mark.parametrize("text,expected", [
    ("postgresql+psycopg://postgres:PASSWORD@127.0.0.1:5432/test", "postgresql+psycopg://***@127.0.0.1:5432/test"),
    ("redis://:s3cr3t@cache:6379/0", "redis://***@cache:6379/0"),
    ("postgresql://u:p@ss/w:rd@db/x", "postgresql://***@db/x"),  # a password holding "@" and "/"
    ("iscore-train --feedback-db 'postgresql://a:b@h/db' --x 1", "iscore-train --feedback-db 'postgresql://***@h/db' --x 1"),
    ("host=db user=app password=hunter2 dbname=x", "host=db user=app password=*** dbname=x"),
    ("https://example.com/feed?token=abc&page=2", "https://example.com/feed?token=***&page=2"),
    ("sqlite:///var/feedback.db", "sqlite:///var/feedback.db"),
    ("no secrets here", "no secrets here"),
])
def test_redact_url_examples(text, expected):
    assert redact_url(text) == expected


segment = st.text(st.characters(min_codepoint=48, max_codepoint=122, whitelist_categories=("Ll", "Lu", "Nd")),
                  min_size=1, max_size=12)


@HYP
@given(dirs=st.lists(segment, min_size=1, max_size=5, unique=True), name=segment, before=words, after=words)
def test_absolute_paths_lose_their_directories(dirs, name, before, after):
    assume(name not in dirs)
    path = "/" + "/".join(dirs) + "/" + name + ".csv"
    out = strip_paths(f"{before} {path} {after}")
    assert path not in out and f" {name}.csv " in out
    assume(all(d not in before + after + name for d in dirs))
    assert not any(f"/{d}/" in out for d in dirs)


@pytest.mark.parametrize("text,expected", [
    ("cannot read CURRENT in /srv/models: [Errno 13] Permission denied: '/srv/models/CURRENT'",
     "cannot read CURRENT in the model registry: [Errno 13] Permission denied: 'CURRENT'"),
    ("no CURRENT pointer in /srv/models", "no CURRENT pointer in the model registry"),
    ("model version 'v1' does not exist in /srv/models.", "model version 'v1' does not exist in the model registry."),
    ("see http://host/a/b and a/b ratios", "see http://host/a/b and a/b ratios"),
    ("/srv/models-old/x.joblib is stale", "x.joblib is stale"),
])
def test_public_text_names_the_registry_and_cuts_other_paths(text, expected):
    assert public_text(text, [("/srv/models", "the model registry")]) == expected


def test_public_value_reduces_path_fields_and_redacts_every_string():
    manifest = {"data": {"spec": {"path": "../shared/data/fb/posts.csv.gz", "mapping": {"text": "link_name"}},
                         "feedback_db": "postgresql://u:pw@db/x"},
                "embeddings": {"file": "/abs/var/emb.npz"}, "notes": ["trained from /home/ci/data/x.csv"], "n": 3}
    out = public_value(manifest)
    assert out["data"]["spec"]["path"] == "posts.csv.gz"
    assert out["data"]["spec"]["mapping"] == {"text": "link_name"}
    assert out["data"]["feedback_db"] == "postgresql://***@db/x"
    assert out["embeddings"]["file"] == "emb.npz"
    assert out["notes"] == ["trained from x.csv"] and out["n"] == 3


user_st = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)


host_st = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,2}(:[0-9]{1,5})?", fullmatch=True)


scheme_st = st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "redis", "https"])


@settings(max_examples=200, deadline=None)
@given(scheme_st, user_st, st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s), host_st)
def test_any_password_in_an_argument_is_masked_whole(scheme, user, password, host):
    arg = f"{scheme}://{user}:{password}@{host}/db"
    assert public_argv(["--feedback-db", arg]) == ["--feedback-db", f"{scheme}://***@{host}/db"]
    assert public_argv([f"--feedback-db={arg}"]) == [f"--feedback-db={scheme}://***@{host}/db"]


@settings(max_examples=200, deadline=None)
@given(scheme_st, user_st, st.text(alphabet=st.characters(exclude_categories=["Z", "C"], exclude_characters="'\""),
                                   min_size=1, max_size=30), host_st)
def test_a_password_inside_a_log_line_is_masked(scheme, user, password, host):
    line = f"error: cannot connect to {scheme}://{user}:{password}@{host}/db (timeout)"
    assert redact(line) == f"error: cannot connect to {scheme}://***@{host}/db (timeout)"


@pytest.mark.parametrize("text", ["sqlite:///var/feedback.db", "https://example.org:8443/path?q=1",
                                  "no url at all"])
def test_text_without_a_password_is_unchanged(text):
    assert redact(text) == text and public_argv([text]) == [text]


def test_absolute_paths_in_argv_become_file_names():
    assert public_argv(["--data", "/home/alice/news.csv", "--registry=/srv/iscore/models", "rel/x.csv"]) == \
        ["--data", "news.csv", "--registry=models", "rel/x.csv"]


def _reference_redact(text: str) -> str:
    """redact_url before its substring pre-check: the key=value regex on every text."""
    from iscore import redact as module

    if not text:
        return text
    out = module._URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text) if "://" in text else text
    return module._KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}***", out)


_KEY_PIECES = st.sampled_from(["password", "PassWD", "pwd", "SECRET", "Token", "api_key", "API-KEY", "apikey",
                               "access_key", "Access-Key", "pa\u017fsword", "api_\u212aey", "to\u212aen", "key",
                               "=", ": ", " = ", "v4lue", "&", ";", ",", "'", "\"", " ", "x", "\u00e9", "://", "@"])


@HYP
@given(pieces=st.lists(st.one_of(_KEY_PIECES, st.text(max_size=3)), max_size=12))
@example(pieces=["pa\u017fsword", "=", "v4lue"])  # non-ASCII letters that match ASCII ones ignoring case
@example(pieces=["api_\u212aey", ": ", "v4lue"])
@example(pieces=["x", "Token", " = ", "v4lue", "&"])
@example(pieces=["Token", " ", "v4lue"])  # neither ":" nor "=": nothing to redact, without the regex
@example(pieces=["https", "://", "x", "@"])
def test_redaction_equals_the_regex_on_every_text(pieces):
    text = "".join(pieces)
    assert redact_url(text) == _reference_redact(text)

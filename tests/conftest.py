"""Shared fixtures: small synthetic headline data and a tiny published model (no ../shared needed)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from iscore import registry
from iscore.model import ModelConfig, build_pipeline
from iscore.settings import Settings

ROOT = Path(__file__).resolve().parents[1]  # the repository
SHARED_DATA = ROOT.parent / "shared" / "data"

HEAVY = ["earthquake kills", "war breaks out", "election result", "court rules", "floods kill",
         "president resigns", "markets crash", "hospital overwhelmed"]
LIGHT = ["cute cats", "cake recipe", "celebrity haircut", "quiz", "holiday photos", "new sneakers",
         "garden tips", "best brunch"]
PLACES = ["Chile", "Kenya", "Ohio", "Paris", "Manila", "Texas"]
# Admin tokens must be 16+ characters without inner white space (iscore/settings.py); tests share this one.
ADMIN_TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_rows(n: int = 600, seed: int = 0) -> list[dict]:
    """Synthetic labelled headlines: 'heavy' topics get more engagement than 'light' ones."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        heavy = rng.random() < 0.5
        topic = rng.choice(HEAVY if heavy else LIGHT)
        text = f"{topic.capitalize()} in {rng.choice(PLACES)} {rng.choice(['today', 'again', 'as expected', ''])}".strip()
        base = 400 if heavy else 20
        rows.append({
            "headline": text,
            "shares": int(base * rng.lognormvariate(0, 0.7)),
            "comments": int(base / 4 * rng.lognormvariate(0, 1.0)),
            "when": (start + timedelta(hours=3 * i)).isoformat(),
            "site": rng.choice(["site_a", "site_b"]),
        })
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (to prove nothing was written)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def fit_tiny(seed: int = 0, **cfg) -> tuple[object, pd.DataFrame]:
    """A fitted pipeline on synthetic rows (fast), with its training frame."""
    from training.target import importance_target

    df = pd.DataFrame(make_rows(seed=seed)).rename(columns={"headline": "text", "site": "source"})
    df["y"] = importance_target(df["shares"], df["source"], pd.to_datetime(df["when"]))
    config = ModelConfig(min_df=1, **cfg)
    return build_pipeline(config).fit(df, df["y"].to_numpy()), df


@pytest.fixture(scope="session")
def tiny_model():
    """(pipeline, training frame) fitted once per test session."""
    return fit_tiny()


def publish_tiny(reg: Path, pipeline, promote: bool = True, **manifest) -> str:
    """Publish a pipeline into a registry (optionally pointing CURRENT at it)."""
    m = {"data": {"fingerprint": "feedc0de" * 8}, "metrics": {"primary": {"name": "spearman", "value": 0.5}}}
    m.update(manifest)
    v = registry.publish(reg, pipeline, m)
    if promote:
        registry.set_current(reg, v)
    return v


@pytest.fixture()
def model_dir(tmp_path, tiny_model) -> Path:
    """A registry with one promoted tiny model."""
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    return reg


@pytest.fixture()
def settings(model_dir, tmp_path) -> Settings:
    return Settings(model_dir=model_dir, admin_token=ADMIN_TOKEN, reload_poll_seconds=0,
                    database_url=f"sqlite:///{tmp_path / 'feedback.db'}",
                    max_headlines=50, max_headline_chars=300, max_body_bytes=20_000)


@pytest.fixture()
def app(settings):
    from service.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture()
def client(app):
    return app.test_client()


def requires_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent (CI has it)")


class Server:
    """A running `iscore-serve` (gunicorn master pid, port, stderr log file) started by :func:`start_server`."""

    def __init__(self, proc, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    def request(self, method: str = "GET", path: str = "/readyz", body: object = None,
                headers: dict | None = None, timeout: float = 5) -> tuple[int, dict]:
        """One request on a new connection: (status, JSON body)."""
        import http.client
        import json

        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, json.dumps(body) if body is not None else None,
                      {"Content-Type": "application/json", **(headers or {})})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()

    def workers(self) -> list[int]:
        """The master's live worker pids."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path: Path, reg: Path, *args: str, **env: str) -> Server:
    """Start the real server (gunicorn, shipped config, 2 workers) on a registry; wait until /readyz is 200."""
    import os
    import subprocess
    import sys
    import time

    port = free_port()
    full = {**os.environ, "ISCORE_MODEL_DIR": str(reg), "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_WORKERS": "2",
            "ISCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}", "ISCORE_STATE_DIR": str(tmp_path / "state"),
            "ISCORE_LOG_LEVEL": "WARNING", **env}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if "ISCORE_WORKER_CLASS" not in env:
        full.pop("ISCORE_WORKER_CLASS", None)  # the shipped default
    log = tmp_path / f"server-{port}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "service.serve", *args], cwd=Path(__file__).resolve().parents[1],
                                env=full, stdout=subprocess.DEVNULL, stderr=err)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if server.request()[0] == 200 and len(server.workers()) == int(full["ISCORE_WORKERS"]):
                return server
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    server.stop()
    pytest.fail("the server did not become ready: " + log.read_text(errors="replace")[-2000:])

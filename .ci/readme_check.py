"""CI: run the README's commands as a newcomer would, in a fresh clone and a fresh virtual environment.

1. The first command block (install + serve) exactly as written, with the base install only:
   /readyz must answer ready and one /v1/score must be scored.
2. The training section's first command block (install the train extra, train with --promote) on a
   small sample of the preset files (ISCORE_DATA_DIR points at it): it must end with a documented
   outcome (0 promoted, 10 refused by the gate) and leave CURRENT naming a verified version.

Standard library only: it runs before anything is installed. Exits non-zero on the first failure.
"""

from __future__ import annotations

import csv
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PORT = 8000  # the README's serve command binds the default 127.0.0.1:8000


def sh_blocks(markdown: str) -> list[str]:
    """The ```sh blocks of a Markdown text, in order."""
    return re.findall(r"```sh\n(.*?)```", markdown, flags=re.S)


def section(markdown: str, title: str) -> str:
    """The text of one '## title' section."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.S | re.M)
    if not m:
        sys.exit(f"readme check: no '## {title}' section in README.md")
    return m.group(1)


def log(msg: str) -> None:
    print(f"readme check [{time.strftime('%H:%M:%S')}]: {msg}", flush=True)


def request(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def venv_env(venv: Path) -> dict[str, str]:
    """The environment a shell has after `source .venv/bin/activate` (no ISCORE_* from outside)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISCORE_", "PROMETHEUS_", "PYTHON"))}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def check_serve(clone: Path, env: dict[str, str], command: str) -> None:
    log(f"running the first command as written: {command}")
    t0 = time.monotonic()
    p = subprocess.Popen(["bash", "-c", command], cwd=clone, env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_path = clone.parent / "serve.log"
    try:
        deadline = time.monotonic() + 900  # the install is part of the command
        while True:
            if p.poll() is not None:
                sys.exit(f"readme check: the serve command exited with {p.returncode}:\n{p.stdout.read()[-4000:]}")
            try:
                status, body = request("GET", "/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("readme check: /readyz not ready within 900 s")
            time.sleep(1)
        log(f"ready after {time.monotonic() - t0:.0f} s (install included): model {body.get('model_version')}")
        # "degraded" is a 200 too: the service fell back to another version because CURRENT failed to load
        # (a shipped version whose files were never committed, say). The README promises the shipped model.
        shipped = (clone / "models" / "CURRENT").read_text().strip()
        if body.get("status") != "ready" or body.get("model_version") != shipped:
            sys.exit(f"readme check: /readyz is {body.get('status')!r} on {body.get('model_version')!r}, "
                     f"not ready on the shipped {shipped!r}: {body}")
        status, body = request("POST", "/v1/score", {"headlines": ["Earthquake kills at least 300 in central Turkey"]})
        if status != 200 or not 0 <= body["scores"][0]["i_score"] <= 100:
            sys.exit(f"readme check: /v1/score answered {status}: {body}")
        log(f"/v1/score: {body['scores'][0]}")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        out_path.write_text(p.stdout.read() if p.stdout else "")
    if p.returncode not in (0, -signal.SIGTERM):
        sys.exit(f"readme check: the server did not stop cleanly on SIGTERM (exit {p.returncode})")
    # The base install builds the C reader (setup.py's optional extension) wherever a C compiler is at hand, as
    # here: a build that silently stopped happening would only show as a slower service.
    served = out_path.read_text()
    if shutil.which("cc") or shutil.which("gcc"):
        if "compiled scorer: text read in C" not in served:
            sys.exit("readme check: a C compiler is here, but the server did not log 'compiled scorer: text read in C':\n"
                     + "\n".join(line for line in served.splitlines() if "compiled scorer" in line)[-2000:])
        log("the base install built the C reader: the server reads text in C")


def sample_presets(dest: Path, rows: int = 4000) -> None:
    """Small copies (in a temporary directory, never committed) of the preset files the command reads."""
    for rel in ("fb_news_pages/fb_news_link_posts.csv.gz", "news_engagement_2019/news_articles.csv.gz"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(SHARED / rel, "rt", encoding="utf-8", newline="") as src, \
                gzip.open(dest / rel, "wt", encoding="utf-8", newline="") as out:
            # Whole CSV records (quoted fields may span lines): the csv module keeps them intact.
            reader, writer = csv.reader(src), csv.writer(out)
            for i, record in enumerate(reader):
                if i > rows:
                    break
                writer.writerow(record)


def check_training(clone: Path, env: dict[str, str], block: str) -> None:
    if not SHARED.is_dir():
        log(f"SKIPPED the training command: {SHARED} is absent (CI has it)")
        return
    data = clone.parent / "data"
    sample_presets(data)
    env = {**env, "ISCORE_DATA_DIR": str(data)}
    champion = (clone / "models" / "CURRENT").read_text().strip()
    for line in [ln.split("#", 1)[0].strip() for ln in block.splitlines()]:
        if not line:
            continue
        log(f"running: {line}")
        t0 = time.monotonic()
        r = subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True)
        log(f"exit {r.returncode} after {time.monotonic() - t0:.0f} s")
        if r.returncode not in (0, 10):
            sys.exit(f"readme check: `{line}` exited {r.returncode}:\n{r.stderr[-4000:]}")
        if "Traceback" in r.stderr:
            sys.exit(f"readme check: `{line}` printed a traceback:\n{r.stderr[-4000:]}")
        if line.startswith("iscore-train"):
            break  # the block's first training command is the one a newcomer runs first
    current = (clone / "models" / "CURRENT").read_text().strip()
    verify = subprocess.run([str(clone.parent / "venv" / "bin" / "python"), "-c",
                             "import sys; from iscore import registry; registry.verify(sys.argv[1], sys.argv[2])",
                             str(clone / "models"), current], env=env, capture_output=True, text=True)
    if verify.returncode != 0:
        sys.exit(f"readme check: CURRENT {current} does not verify: {verify.stderr[-2000:]}")
    log(f"CURRENT {'unchanged' if current == champion else 'now ' + current} and verified")


def main() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = sh_blocks(readme)[:2]
    if len(first) < 2:
        sys.exit("readme check: README.md must start with two sh blocks (serve, tests)")
    serve_cmd, test_cmd = first[0].strip(), first[1].strip()
    if test_cmd not in (ROOT / ".ci" / "run").read_text():
        sys.exit(f"readme check: .ci/run does not run the README's test command `{test_cmd}`")
    train_block = sh_blocks(section(readme, "Training and the registry"))[0]
    with tempfile.TemporaryDirectory(prefix="iscore-readme-") as tmp:
        clone = Path(tmp) / "iscore"
        # A clone of what is committed: nothing the checkout has lying around helps the newcomer.
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = venv_env(venv)
        check_serve(clone, env, serve_cmd)
        check_training(clone, env, train_block)
        shutil.rmtree(clone, ignore_errors=True)
    log("README commands work in a fresh clone and a fresh virtual environment")


if __name__ == "__main__":
    main()

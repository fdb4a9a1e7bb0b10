"""Deploy files: Kubernetes manifests against the API schemas and our own rules, Dockerfile, crontab."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"


def _docs() -> list[dict]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _one(kind: str) -> dict:
    found = [d for d in _docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}"
    return found[0]


def _pod_spec(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifests_validate_against_the_kubernetes_schema(path):
    import kubernetes_validate

    for doc in yaml.safe_load_all(path.read_text()):
        # strict: unknown fields (a typo such as `imagePullPolice`) fail too
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_a_gate_refusal_fails_the_job_without_a_rerun():
    job = _one("CronJob")["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    by_code = [r for r in rules if "onExitCodes" in r]
    # `Ignore` on an exit code does not count the failure and starts a replacement Pod: a refused
    # challenger would be retrained again and again.
    assert all(r["action"] != "Ignore" for r in by_code)
    fail = {c for r in by_code if r["action"] == "FailJob" for c in r["onExitCodes"]["values"]}
    assert {10, 11, 2, 3, 4} <= fail
    assert _pod_spec(_one("CronJob"))["restartPolicy"] == "Never"


def test_images_are_pinned_and_pods_run_as_the_image_user_with_writable_claims():
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"--uid (\d+)", dockerfile).group(1))
    for obj in (_one("CronJob"), _one("Deployment")):
        spec = _pod_spec(obj)
        sc = spec["securityContext"]
        assert sc["runAsUser"] == uid and sc["fsGroup"] == uid and sc["runAsNonRoot"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert not c["image"].endswith(":latest") and ":" in c["image"]
            assert c["imagePullPolicy"] == "IfNotPresent"


def test_deployment_probes_service_and_claims_fit_together():
    dep, svc = _one("Deployment"), _one("Service")
    c = _pod_spec(dep)["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"] for p in c["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] in port_names
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    claims = {d["metadata"]["name"] for d in _docs() if d["kind"] == "PersistentVolumeClaim"}
    for obj in (dep, _one("CronJob")):
        used = {v["persistentVolumeClaim"]["claimName"] for v in _pod_spec(obj)["volumes"] if "persistentVolumeClaim" in v}
        assert used <= claims
    env = {e["name"]: e for e in c["env"]}
    assert "value" not in env["ISCORE_ADMIN_TOKEN"]  # from a Secret, never inline
    assert any(m["mountPath"] == env["ISCORE_STATE_DIR"]["value"] for m in c["volumeMounts"])


def test_dockerfile_gives_the_service_user_its_state_directory():
    text = (ROOT / "Dockerfile").read_text()
    state = re.search(r"ISCORE_STATE_DIR=(\S+)", text).group(1)
    assert re.search(rf"chown iscore:iscore {re.escape(state)}\b", text)
    assert text.index(f"chown iscore:iscore {state}") < text.index("USER iscore")


def test_crontab_line_runs_under_crons_path_from_a_virtual_environment(tmp_path):
    """The line works with cron's PATH: here it reaches the trainer, which reports missing data."""
    line = next(ln for ln in (ROOT / "deploy" / "crontab").read_text().splitlines()
                if ln.strip() and not ln.startswith("#"))
    fields = line.split(None, 5)
    assert len(fields) == 6 and fields[:5] == ["15", "2", "*", "*", "*"]
    trainer = shutil.which("iscore-train")
    if trainer is None:
        pytest.skip("iscore-train is not installed on PATH (pip install -e .)")
    root = tmp_path / "srv"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "iscore-train").symlink_to(trainer)
    command = fields[5].replace("/srv/iscore", str(root)).replace("/srv/data", str(tmp_path / "data"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh"}  # what cron gives a job
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    r = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=120)
    logged = (root / "var" / "log" / "retrain.log").read_text()
    assert r.returncode == 3, logged  # exit 3: data error (no data under the empty data dir)
    assert "data" in logged.lower() and "Traceback" not in logged
    assert r.stdout == "" and r.stderr == ""  # everything went to the log in the state directory


def test_dockerfile_runs_as_non_root_with_healthcheck_and_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*healthz", text, re.M | re.S)
    assert not re.search(r"(TOKEN|SECRET|PASSWORD)\s*=", text)
    # train: the same image runs the nightly retrain; postgres: deploy/k8s points the feedback store at PostgreSQL.
    assert 'pip install -e ".[train,postgres]"' in text and "COPY models" in text
    # The C reader is built in the image (setup.py copied, a compiler while installing, the import checked) and the
    # host's build of it never copied in.
    assert "setup.py" in text and "gcc" in text and "import iscore._speedups" in text
    assert "**/*.so" in (ROOT / ".dockerignore").read_text().split()

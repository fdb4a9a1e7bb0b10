# i-Score service image: gunicorn serving the shipped default model as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN groupadd --system --gid 10001 iscore && useradd --system --create-home --uid 10001 --gid 10001 iscore

# Dependencies and code first (cached layer), then the model versions. /app stays root-owned and
# read-only for the service user: everything it writes goes to the state directory.
COPY pyproject.toml setup.py README.md ./
COPY iscore ./iscore
COPY service ./service
COPY training ./training
# The train extra (pandas, matplotlib) lets the same image run the scheduled `iscore-train retrain`.
# Editable: the service runs from /app (python -m puts it first on sys.path), so the C reader of the compiled
# scorer (iscore/_speedups.c) is built here, beside the code that imports it. gcc is needed only for that build
# and leaves in the same layer; the import check fails the build rather than ship a slower image unnoticed.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install -e ".[train,postgres]" \
    && python -c "import iscore._speedups" \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* build
COPY models ./models

# Runtime state (feedback database, metrics scratch, refused reports, logs): one directory owned by
# the service user; mount a volume here to keep it.
RUN mkdir -p /var/lib/iscore && chown iscore:iscore /var/lib/iscore
USER iscore

ENV ISCORE_MODEL_DIR=/app/models \
    ISCORE_STATE_DIR=/var/lib/iscore \
    ISCORE_BIND=0.0.0.0:8000 \
    ISCORE_WORKERS=2
VOLUME ["/var/lib/iscore"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# gunicorn stops gracefully on SIGTERM (docker stop); SIGHUP restarts workers on the CURRENT model.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service.serve"]

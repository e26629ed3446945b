# custsync's worker and beat image (docker-compose.yml runs the Procfile's two processes from it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY sandbox ./sandbox
COPY state ./state
COPY worker ./worker
RUN pip install . \
    && useradd --create-home --uid 10001 custsync

# Celery refuses to be comfortable as root, and nothing here needs it.
USER custsync
WORKDIR /home/custsync

CMD ["celery", "-A", "worker.app", "worker", "--loglevel", "INFO"]

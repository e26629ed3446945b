# custsync's images: the worker and beat image (the default, last target: docker-compose.yml runs the
# Procfile's two processes from it) and, for `docker compose --profile demo`, the sandbox image.
FROM python:3.11-slim AS base

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
# Celery refuses to be comfortable as root, and nothing here needs it.
RUN useradd --create-home --uid 10001 custsync

# The emulators of `custsync sandbox` (starlette, uvicorn) come with the sandbox extra: only here.
FROM base AS sandbox
RUN pip install '.[sandbox]'
USER custsync
WORKDIR /home/custsync

# Production: the package without the sandbox extra.
FROM base AS production
RUN pip install .
USER custsync
WORKDIR /home/custsync

CMD ["celery", "-A", "worker.app", "worker", "--loglevel", "INFO"]

# The image of the migrate, worker and beat services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEARTH_DATA_DIR=/var/lib/hearth

WORKDIR /app
COPY pyproject.toml README.md alembic.ini beat_schedule.py ./
COPY stores ./stores
COPY providers ./providers
COPY workers ./workers
COPY migrations ./migrations
# Editable: the migrations and alembic.ini are found next to the package, in /app.
RUN pip install -e . \
    && useradd --create-home --uid 1000 hearth \
    && mkdir -p /var/lib/hearth \
    && chown hearth /var/lib/hearth

USER hearth
CMD ["hearth", "worker"]

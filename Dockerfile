# One image for every Python service (worker, singleton worker, beat, flower, monitor).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BEATKEEPER_DATA_DIR=/var/lib/beatkeeper

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py Procfile ./
COPY tasks ./tasks
COPY schedules ./schedules
COPY monitoring ./monitoring
COPY examples ./examples
RUN pip install --no-cache-dir ".[postgres]" \
    && useradd --system --uid 10001 --home-dir /app beatkeeper \
    && mkdir -p /var/lib/beatkeeper && chown beatkeeper /var/lib/beatkeeper

USER beatkeeper
# No default command: docker-compose gives each service the same command as the Procfile.

# One image for every Python service (worker, singleton worker, beat, flower, monitor).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BEATKEEPER_DATA_DIR=/var/lib/beatkeeper

WORKDIR /app
# Dependencies first, in their own layer: a change to the code alone does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
# The platform and your code: tasks/ (your task modules in tasks/user/), schedules/ (your
# schedule file schedules/user.yaml), monitoring/. Installed in place, so the CLI, beat and the
# workers all read them from /app.
COPY README.md celeryconfig.py Procfile ./
COPY tasks ./tasks
COPY schedules ./schedules
COPY monitoring ./monitoring
COPY examples ./examples
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --uid 10001 --home-dir /app beatkeeper \
    && mkdir -p /var/lib/beatkeeper && chown beatkeeper /var/lib/beatkeeper

USER beatkeeper
# No default command: docker-compose gives each service the same command as the Procfile.

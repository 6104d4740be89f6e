# The Slack approval bot. Build: docker build -t slack-approval-bot .
# Run it against a real PostgreSQL (DATABASE_URL); see docs/production.md and compose.yaml.

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
COPY deploy/install.sh deploy/install.sh
RUN sh deploy/install.sh dependencies /opt/venv
COPY bot ./bot
COPY graph ./graph
RUN sh deploy/install.sh project /opt/venv

FROM python:3.12-slim
# LOG_FORMAT=json: one JSON object per log line for the log collector. No secrets here: pass
# SLACK_* and ANTHROPIC_API_KEY at run time (env file, orchestrator secrets).
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_FORMAT=json \
    HOST=0.0.0.0 \
    PORT=3000
RUN groupadd --system --gid 10001 bot \
 && useradd --system --no-log-init --create-home --home-dir /home/bot --uid 10001 --gid 10001 bot
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /home/bot
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=3)"]
# SIGTERM drains in-flight work for up to 25 s: give the container at least 30 s to stop.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot"]

# The bot for self-hosters: `docker compose up` runs it beside PostgreSQL (docker-compose.yml). Slim, and not
# root; the health check is the bot's own /healthz, which says 503 while the database is away.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=3000
WORKDIR /app
RUN useradd --create-home --uid 10001 relay

COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

COPY bot.py relay.example.toml manifest.json ./
COPY adapters/ adapters/
COPY relay/ relay/

USER relay
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
CMD ["python", "bot.py"]

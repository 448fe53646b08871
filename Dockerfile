# The terminology server: granian WSGI workers (content loaded once before forking)
# with the bundled content baked in. Configured by TX_* environment variables (see
# terminology/settings.py and the README's Deployment section).
#
#   docker build -t cpt-terminology .
#   docker run --rm -p 8080:8080 cpt-terminology
#   docker run --rm cpt-terminology check          # any `terminology` sub-command

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid, so a bind-mounted CPT database only needs to be readable by 10001.
RUN groupadd --system --gid 10001 tx \
    && useradd --system --uid 10001 --gid tx --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin tx

# Installed as a normal (non-editable) package from a throwaway copy of the source, so the
# code runs from site-packages and nothing in /app shadows it.
COPY pyproject.toml README.md /tmp/src/
COPY terminology/ /tmp/src/terminology/
RUN pip install --no-cache-dir /tmp/src && rm -rf /tmp/src

# settings.BUNDLED_CONTENT points next to the package, which in site-packages has no
# codesystems/; the content lives in /app/codesystems and TX_CONTENT_DIRS names it.
WORKDIR /app
COPY codesystems/ /app/codesystems/

ENV TX_HOST=0.0.0.0 \
    TX_PORT=8080 \
    TX_WORKERS=2 \
    TX_THREADS=4 \
    TX_CONTENT_DIRS=/app/codesystems \
    TX_CPT_DATABASES=/data/cpt \
    TX_MAX_EXPANSION_SIZE=10000 \
    TX_MAX_BODY_BYTES=10485760 \
    TX_REQUEST_TIME_LIMIT=10 \
    TX_LOG_LEVEL=info \
    TX_CACHE_DIR=/app/cache

# /data/cpt: where a read-only volume of licensed CPT databases is mounted (empty: the fragment).
RUN mkdir -p /app/cache /data/cpt && chown 10001:10001 /app/cache
USER 10001:10001

# Validate the bundled content now: a broken resource fails the build, not the deployment,
# and the remembered hashes make every replica's start skip the slow model validation.
RUN ["python", "-c", "from terminology.content import load_content; from terminology.settings import Settings; r = load_content(Settings.from_env()); print(len(r.providers()), 'code systems valid')"]

EXPOSE 8080

# Liveness: the process answers /healthz (the port opens only once all content is loaded).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TX_PORT', '8080'), timeout=4)"]

# The server's main process is PID 1: on SIGTERM it stops accepting, lets in-flight requests
# finish (up to 20 s) and exits. Give it that long: `docker stop -t 30` / stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["terminology"]
CMD ["serve"]

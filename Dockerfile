# The kpi-engine image: one image for the worker, topic creation, tokens and the simulator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# jemalloc: the worker re-executes itself on it (KPI_ALLOCATOR=auto); under glibc's malloc
# a live worker's RSS kept creeping up (docs/settings.md, KPI_ALLOCATOR).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY processors ./processors
COPY projections ./projections
COPY streams ./streams
RUN pip install . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/kpi kpi \
 && mkdir -p /var/lib/kpi/data /var/lib/kpi-auth /var/lib/kpi-scrape \
 && chown -R kpi:kpi /var/lib/kpi /var/lib/kpi-auth /var/lib/kpi-scrape

# State on disk (RocksDB) and the hashed API tokens; docker-compose.yml mounts volumes here.
# KPI_WEB_HOST is both the bind address and the URL other workers use to reach this one:
# set it to a name they can resolve (docker-compose.yml uses each container's hostname).
ENV KPI_DATA_DIR=/var/lib/kpi/data \
    KPI_TOKENS_FILE=/var/lib/kpi-auth/tokens.json \
    KPI_WEB_HOST=0.0.0.0 \
    KPI_WEB_PORT=6066

WORKDIR /var/lib/kpi
USER kpi
EXPOSE 6066

# /health answers 200 once the worker serves its partitions, 503 before (urlopen raises).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://%s:%s/health' % (os.environ['KPI_WEB_HOST'], os.environ['KPI_WEB_PORT']), timeout=4)"]

ENTRYPOINT ["kpi"]
CMD ["worker"]

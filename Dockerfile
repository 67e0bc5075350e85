# One image for every cchc process (docker compose: ops/docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contest contest
COPY runtime runtime
COPY eventstore eventstore
COPY ingest ingest
COPY scorer scorer
COPY projections projections
COPY results results
COPY admin admin
COPY ops ops
COPY contests contests
RUN pip install --no-cache-dir . && useradd --system cchc
USER cchc
ENV CCHC_HOST=0.0.0.0 CCHC_CONTEST=/app/contests/nghean-2022
ENTRYPOINT ["cchc"]

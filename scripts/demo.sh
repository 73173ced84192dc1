#!/usr/bin/env bash
# Zester on one machine, in two parts:
# 1. a master with its embedded NATS JetStream server (secure by default: its
#    first start creates the PKI, and only clients with credentials from it
#    connect), two real peels with credentials from `zester pki peel add`, a
#    ping and a command to every peel, and the seed's buckets as the stock
#    `nats` CLI sees them with the admin's credentials (about 20 s);
# 2. the load generator's default demo: 100,000 simulated peels against an
#    in-process server and real masters, every scenario, with the raw-NATS
#    baseline measured in the same run and a report at the end (about 5 min here, 4 of them the enrollment storm).
# Everything lives in a temporary directory and stops when the script ends.
# The directory is removed after a successful run and kept, with the logs,
# after a failure.
#
# Ports on 127.0.0.1 (each must be free; the script checks before it starts
# anything, so that it never talks to another master by mistake):
#   ZESTER_DEMO_PORT          NATS clients         (default 4222)
#   ZESTER_DEMO_MONITOR_PORT  NATS monitoring      (default 8222)
#   ZESTER_DEMO_HTTP_PORT     master /readyz; the two peels use the next two (default 9100)
# ZESTER_DEMO_SKIP_LOADGEN=1 runs only the first part.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${ZESTER_DEMO_PORT:-4222}
monitor=${ZESTER_DEMO_MONITOR_PORT:-8222}
mhttp=${ZESTER_DEMO_HTTP_PORT:-9100}
url="nats://127.0.0.1:$port"

# busy reports whether something accepts connections on 127.0.0.1:$1.
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$monitor" "$mhttp" "$((mhttp + 1))" "$((mhttp + 2))"; do
  if busy "$p"; then
    echo "demo: port $p on 127.0.0.1 is already in use (another zester-master, peel or nats-server?)." >&2
    echo "demo: stop it, or choose other ports with ZESTER_DEMO_PORT, ZESTER_DEMO_MONITOR_PORT and ZESTER_DEMO_HTTP_PORT." >&2
    exit 1
  fi
done

work=$(mktemp -d /tmp/zester-demo.XXXXXX)
bin="$work/bin"
pids=()
cleanup() {
  rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "demo: failed (exit status $rc); logs and configuration kept in $work" >&2
  fi
}
trap cleanup EXIT

# fail says what went wrong, shows the end of the log that explains it, and
# exits (the EXIT trap keeps the directory).
fail() {
  echo "demo: $1" >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then
    echo "demo: last lines of $2:" >&2
    tail -n 20 "$2" >&2
  fi
  exit 1
}

# wait_ready waits until the process $1 answers 200 on http://127.0.0.1:$2/readyz,
# and fails if the process exits first or is not ready within 30 s.
wait_ready() {
  local pid=$1 hport=$2 name=$3 log=$4
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || fail "$name exited during start" "$log"
    curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null && return 0
    sleep 0.2
  done
  fail "$name is not ready after 30 s (http://127.0.0.1:$hport/readyz)" "$log"
}

echo "==> building zester, zester-master, zester-peel, nats into $bin"
go build -o "$bin/" ./cmd/zester ./cmd/zester-master ./cmd/zester-peel github.com/nats-io/natscli/nats
cat >"$work/master.yaml" <<YAML
id: master-1
http: 127.0.0.1:$mhttp
nats:
  embedded:
    listen: 127.0.0.1:$port
    monitor: 127.0.0.1:$monitor
    store_dir: $work/nats
states_dir: $work/states
settings_dir: $work/settings
pki_dir: $work/pki
YAML
echo "==> starting zester-master (embedded JetStream on $url, monitoring on :$monitor; first start creates the PKI in $work/pki)"
"$bin/zester-master" --config "$work/master.yaml" 2>"$work/master.log" &
mpid=$!
pids+=("$mpid")
wait_ready "$mpid" "$mhttp" zester-master "$work/master.log"
# The ports were free and this process is alive, so the master that answers
# is ours; its log says so too.
grep -q '"msg":"master ready"' "$work/master.log" || fail "the master answering on :$mhttp did not log \"master ready\"" "$work/master.log"
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
http: 127.0.0.1:$((mhttp + n))
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
  wait_ready "${pids[$n]}" "$((mhttp + n))" "zester-peel $n" "$work/peel-$n.log"
done
echo "==> zester run '*' test.ping"
"$bin/zester" --nats "$url" run '*' test.ping
echo "==> zester run '*' cmd.run 'uname -sr'"
"$bin/zester" --nats "$url" run '*' cmd.run 'uname -sr'
echo "==> zester peels"
"$bin/zester" --nats "$url" peels
echo "==> zester masters"
"$bin/zester" --nats "$url" masters
echo "==> zester check"
"$bin/zester" --nats "$url" check
echo "==> nats --creds admin.creds kv ls"
"$bin/nats" --server "$url" --creds "$admin" kv ls
echo "==> curl -s http://127.0.0.1:$monitor/jsz"
curl -s "http://127.0.0.1:$monitor/jsz" | head -c 400; echo
echo "==> part 1 done; logs were in $work (removed on exit)"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
if [ -z "${ZESTER_DEMO_SKIP_LOADGEN:-}" ]; then
  echo "==> zester-loadgen: 100,000 simulated peels, every scenario, raw NATS baseline beside"
  go run ./cmd/zester-loadgen
fi

#!/bin/bash
# Restart after kill -9 at one million series (issue 3's restart target), by hand:
#   bench/restart_1m.sh build/tools/tidemark build/bench/loadgen [WORKDIR]
# Generates 1,000,000 series x 10 min (no churn) once, ingests it into a fresh data directory,
# prints the server's memory and head checkpoint, kills it with SIGKILL, times a restart until
# /-/ready answers, and counts every sample back (sum(count_over_time(NAME[1d])) per metric).
# Takes about 5 minutes on 2 cores; uses port 19401.
set -u
TM=$1; LG=$2; W=${3:-/tmp/tidemark-restart}; D=$W/data; L=$W/load; P=19401
mkdir -p $W
[ -f $L/manifest.json ] || $LG generate --out=$L --series=1000000 --hours=0.1666 --churn=0 >/dev/null
pkill -f "$D"; while pgrep -f "$D" >/dev/null; do sleep 0.5; done; rm -rf $D
$TM serve --storage.path=$D --web.listen-address=127.0.0.1:$P > $W/serve.log 2>&1 &
PID=$!
sleep 2
T0=$(date +%s.%N)
$LG send --dir=$L --url=http://127.0.0.1:$P/api/v1/write | grep -o '"failed": [a-z]*'
T1=$(date +%s.%N)
echo "ingest wall $(python3 -c "print(round($T1 - $T0, 1))") s; HWM $(grep VmHWM /proc/$PID/status)"
curl -s 127.0.0.1:$P/metrics | grep -E "^tidemark_(head_)?memory_bytes|^tidemark_wal_bytes|checkpoint" | tr '\n' ' '; echo
ls -la $D/HEAD-CHECKPOINT 2>/dev/null
kill -9 $PID; while kill -0 $PID 2>/dev/null; do sleep 0.1; done
T2=$(date +%s.%N)
$TM serve --storage.path=$D --web.listen-address=127.0.0.1:$P > $W/restart.log 2>&1 &
PID=$!
until curl -sf 127.0.0.1:$P/-/ready >/dev/null; do sleep 0.05; done
T3=$(date +%s.%N)
echo "ready after kill -9: $(python3 -c "print(round($T3 - $T2, 2))") s; HWM $(grep VmHWM /proc/$PID/status)"
END=$(python3 -c "import json;print(json.load(open('$L/manifest.json'))['end_ms']/1000)")
TOTAL=0
for n in http_requests_total container_cpu_usage_seconds_total container_memory_working_set_bytes kube_pod_container_resource_requests app_load_average app_gc_pause_ewma_seconds up http_request_duration_seconds_bucket http_request_duration_seconds_sum http_request_duration_seconds_count; do
  c=$(curl -s "127.0.0.1:$P/api/v1/query" --data-urlencode "query=sum(count_over_time(${n}[1d]))" --data-urlencode "time=$END" | python3 -c "import json,sys;print(json.load(sys.stdin)['data']['result'][0]['value'][1])")
  TOTAL=$((TOTAL + c))
done
echo "samples after restart: $TOTAL (manifest: $(python3 -c "import json;print(json.load(open('$L/manifest.json'))['samples'])"))"
kill $PID; wait $PID 2>/dev/null

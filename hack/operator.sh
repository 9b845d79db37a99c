#!/usr/bin/env bash
# Starts or stops a background operator process against the local cluster.
#   hack/operator.sh start STATE_DIR [operator flags...]   (KUBECONFIG must be set)
#   hack/operator.sh stop STATE_DIR
set -euo pipefail
action=${1:?start|stop}; state=${2:?state dir}; shift 2
pidfile="$state/operator.pid"
mkdir -p "$state/logs"
case "$action" in
  start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "operator already running (pid $(cat "$pidfile")); log: $state/logs/operator.log"; exit 0
    fi
    nohup exportjob-operator --log-format plain "$@" >>"$state/logs/operator.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
      curl -fs "http://127.0.0.1:8081/healthz" >/dev/null 2>&1 && { echo "operator running (pid $(cat "$pidfile")); log: $state/logs/operator.log"; exit 0; }
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "operator exited; log:" >&2; tail -20 "$state/logs/operator.log" >&2; exit 1; }
      sleep 0.5
    done
    echo "operator did not become healthy; log: $state/logs/operator.log" >&2; exit 1 ;;
  stop)
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
      rm -f "$pidfile"
      echo "operator stopped"
    fi ;;
  *) echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# `make run`: the 2018-07-30 storm, twice, on this machine.
#   1. straight at a BinderHub simulator (what mybinder.org had), then
#   2. at a second simulator behind Envoy + binderguard (what binderguard gives),
# prints both summaries side by side, and leaves the protected stack up until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin="$root/bin"
logs=$(mktemp -d -t binderguard-run.XXXX)
CLIENTS=${CLIENTS:-200}
BUILD_TIME=${BUILD_TIME:-20s}
SPEC=${SPEC:-gh/jupyterlab/jupyterlab-demo/HEAD}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

# need_free fails at once, naming the port, when another program listens
# on one this demo needs: the storm would otherwise go to whatever answers.
need_free() { # port, what
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "run: port $1 ($2) is already in use by another program; stop it and run again" >&2
		exit 1
	fi
}
# wait_ours waits until url answers with body text `want` while the child
# pid is alive: the answer must come from the process this script started.
wait_ours() { # pid, url, want, what, log
	for _ in $(seq 1 100); do
		if ! kill -0 "$1" 2>/dev/null; then
			echo "run: $4 exited: $(tail -n 1 "$5")" >&2
			exit 1
		fi
		curl -fsS "$2" 2>/dev/null | grep -q "$3" && return 0
		sleep 0.2
	done
	echo "run: $4 did not answer at $2; logs in $logs" >&2
	exit 1
}
for p in 8586:simulator 8585:simulator 8080:Envoy 9901:"Envoy admin" 8081:gate 18000:xDS 8082:metrics; do
	need_free "${p%%:*}" "${p#*:}"
done

mix="$logs/mix.yaml"
cat > "$mix" <<'MIX'
- spec: gh/binder-examples/requirements/HEAD
  clients: 20
  interval: 1s
- spec: gh/binder-examples/conda/HEAD
  clients: 20
  interval: 1s
MIX

echo "== 1/2: the incident: $CLIENTS launches of $SPEC straight at the simulator (build takes $BUILD_TIME)"
"$bin/fakebinder" --listen 127.0.0.1:8586 --build-time "$BUILD_TIME" --built-specs 'binder-examples/.*' >"$logs/fakebinder-direct.log" 2>&1 &
pids+=($!)
wait_ours $! http://127.0.0.1:8586/versions fakebinder "simulator (direct)" "$logs/fakebinder-direct.log"
"$bin/launchstorm" --url http://127.0.0.1:8586 --spec "$SPEC" --clients "$CLIENTS" --mix "$mix" \
	--stats-url http://127.0.0.1:8586/_sim/stats --timeout 3m >"$logs/direct.json"

echo
echo "== 2/2: the same storm through Envoy + binderguard"
"$bin/fakebinder" --listen 127.0.0.1:8585 --build-time "$BUILD_TIME" --built-specs 'binder-examples/.*' >"$logs/fakebinder.log" 2>&1 &
pids+=($!)
wait_ours $! http://127.0.0.1:8585/versions fakebinder "simulator" "$logs/fakebinder.log"
"$bin/binderguard" local --upstream http://127.0.0.1:8585 --listen 127.0.0.1:8080 --admin 127.0.0.1:9901 \
	--policies manifests/examples >"$logs/binderguard.log" 2>&1 &
pids+=($!)
wait_ours $! http://127.0.0.1:8080/versions fakebinder "Envoy + binderguard in front of the simulator" "$logs/binderguard.log"
"$bin/launchstorm" --url http://127.0.0.1:8080 --spec "$SPEC" --clients "$CLIENTS" --mix "$mix" \
	--stats-url http://127.0.0.1:8585/_sim/stats --timeout 3m >"$logs/guarded.json"

echo
python3 - "$logs/direct.json" "$logs/guarded.json" <<'PY'
import json, sys
d, g = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, f):
    try: a, b = f(d), f(g)
    except (KeyError, TypeError): return
    print(f"{name:<42}{a!s:>14}{b!s:>18}")
print(f"{'':<42}{'direct':>14}{'binderguard':>18}")
row("storm launches ready", lambda s: f"{s['ready']}/{s['clients']}")
row("storm p99 time to ready (s)", lambda s: s['p99_ready_s'])
row("distinct tokens", lambda s: s['distinct_tokens'])
row("peak build watchers in BinderHub", lambda s: s['sim_stats']['peak_build_watchers'])
row("other repos' launches ready", lambda s: f"{s['mix']['ready']}/{s['mix']['clients']}")
row("other repos' p99 time to ready (s)", lambda s: s['mix']['p99_ready_s'])
PY
cat <<MSG

binderguard is up (logs in $logs):
  launch through Envoy:   curl -N -H 'Accept: text/event-stream' http://127.0.0.1:8080/build/$SPEC
  Envoy admin and stats:  http://127.0.0.1:9901/stats/prometheus
  binderguard metrics:    http://127.0.0.1:8082/metrics
  simulator stats:        http://127.0.0.1:8585/_sim/stats
  policies (edit live):   $root/manifests/examples/
Ctrl-C to stop.
MSG
wait

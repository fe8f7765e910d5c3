#!/usr/bin/env bash
# Starts Janus (Debian package) for the benchmark: HTTP API on 127.0.0.1:8088, the VideoRoom
# plugin only, ICE-lite, host candidates on 127.0.0.1 only, pinned to one core.
#
#   bench/janus/run.sh            # foreground; Ctrl-C stops it
#   JANUS_CORE=0 JANUS_DEBUG_LEVEL=2 JANUS_EVENT_LOOPS=0 bench/janus/run.sh
#
# Env: JANUS_CORE (0) the core for taskset; JANUS_HTTP_PORT (8088); JANUS_DEBUG_LEVEL (2: errors
# and warnings); JANUS_EVENT_LOOPS (0 = Janus's default, one loop thread per handle);
# JANUS_RTP_PORTS (20000-29999); JANUS_NICE_DEBUG (false) for libnice's ICE log. Installs the package when janus is missing (needs root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
core="${JANUS_CORE:-0}"
http_port="${JANUS_HTTP_PORT:-8088}"
debug_level="${JANUS_DEBUG_LEVEL:-2}"
event_loops="${JANUS_EVENT_LOOPS:-0}"
rtp_ports="${JANUS_RTP_PORTS:-20000-29999}"
nice_debug="${JANUS_NICE_DEBUG:-false}"

if ! command -v janus >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
janus_lib="$(dirname "$(dpkg -L janus | grep -m1 '/janus/plugins/libjanus_videoroom.so$')")/.."

work="$(mktemp -d /tmp/conclave-bench-janus.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/conf" "$work/plugins" "$work/transports" "$work/events" "$work/loggers"
ln -s "$janus_lib/plugins/libjanus_videoroom.so" "$work/plugins/"
ln -s "$janus_lib/transports/libjanus_http.so" "$work/transports/"
cc -shared -fPIC -O2 -o "$work/loopback-shim.so" "$here/loopback-shim.c" -ldl

loops_line=""
if [ "$event_loops" != "0" ]; then loops_line="event_loops = $event_loops"; fi

cat >"$work/conf/janus.jcfg" <<JCFG
general: {
	configs_folder = "$work/conf"
	plugins_folder = "$work/plugins"
	transports_folder = "$work/transports"
	events_folder = "$work/events"
	loggers_folder = "$work/loggers"
	debug_level = $debug_level
	session_timeout = 120
	$loops_line
}
certificates: {
}
media: {
	rtp_port_range = "$rtp_ports"
	no_media_timer = 5
}
nat: {
	ice_lite = true
	ice_tcp = false
	full_trickle = false
	ice_enforce_list = "127.0.0.1"
	nice_debug = $nice_debug
}
plugins: {
}
transports: {
}
loggers: {
}
events: {
	broadcast = false
}
JCFG

cat >"$work/conf/janus.transport.http.jcfg" <<JCFG
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $http_port
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
JCFG

cat >"$work/conf/janus.plugin.videoroom.jcfg" <<JCFG
general: {
}
JCFG

echo "janus: config in $work, http://127.0.0.1:$http_port/janus, core $core" >&2
# Not exec: the trap must still remove the temp dir when Janus exits.
LD_PRELOAD="$work/loopback-shim.so" taskset -c "$core" janus --configs-folder="$work/conf" --config="$work/conf/janus.jcfg" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT INT TERM
wait "$pid"

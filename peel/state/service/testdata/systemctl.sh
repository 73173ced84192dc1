#!/bin/sh
# Stand-in for systemctl in the service tests, where systemd is not PID 1.
# Units are $SYSTEMD_STATE/units/NAME.service, each holding the shell
# command of its daemon (a line "static" makes the unit static). A started
# unit is a real background process whose pid is in pid/NAME; enabled/NAME
# marks it enabled. Every call is appended to $SYSTEMD_STATE/log. Like
# systemctl, start/stop/restart return once the job is done.
echo "systemctl $*" >>"$SYSTEMD_STATE/log"
st=$SYSTEMD_STATE
mkdir -p "$st/units" "$st/pid" "$st/enabled"

verb=$1
shift
[ "$1" = -- ] && shift
[ "$verb" = show ] && { props=${1#--property=}; shift; [ "$1" = -- ] && shift; }
u=$1
case $u in *.*) ;; *) u=$u.service;; esac
file=$st/units/$u

# running PID: it exists and is not a zombie (the stand-in exits at once, so
# its daemons are reaped by whatever PID 1 is, whenever it gets to it).
running() { kill -0 "$1" 2>/dev/null && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'; }
alive() { [ -f "$st/pid/$u" ] && running "$(cat "$st/pid/$u")"; }
need() { [ -f "$file" ] || { echo "Failed to $verb $u: Unit $u not found." >&2; exit 5; }; }
start() {
	alive && return 0
	cmd=$(grep -v '^static$' "$file")
	sh -c "$cmd" </dev/null >/dev/null 2>&1 &
	echo $! >"$st/pid/$u"
}
stop() {
	alive || { rm -f "$st/pid/$u"; return 0; }
	pid=$(cat "$st/pid/$u")
	kill "$pid"
	i=0
	while running "$pid"; do
		i=$((i + 1))
		[ $i -gt 600 ] && { echo "stop $u: $pid does not exit" >&2; exit 1; }
		sleep 0.05
	done
	rm -f "$st/pid/$u"
}

case $verb in
show)
	if [ ! -f "$file" ]; then
		printf 'LoadState=not-found\nActiveState=inactive\nUnitFileState=\n'
		exit 0
	fi
	a=inactive; alive && a=active
	f=disabled; [ -f "$st/enabled/$u" ] && f=enabled; grep -qx static "$file" && f=static
	printf 'ActiveState=%s\nLoadState=loaded\nUnitFileState=%s\n' "$a" "$f";;
start) need; start;;
stop) need; stop;;
restart) need; stop; start;;
reload) need; alive || { echo "Job for $u failed: not active" >&2; exit 1; }; kill -HUP "$(cat "$st/pid/$u")";;
enable) need; touch "$st/enabled/$u";;
disable) need; rm -f "$st/enabled/$u";;
*) echo "systemctl stand-in: unknown verb $verb" >&2; exit 1;;
esac

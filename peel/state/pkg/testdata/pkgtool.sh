#!/bin/sh
# Stand-in for dpkg-query, apt-cache, apt-get, rpm, dnf and apk in the pkg
# tests (installed under each of those names). The package database is
# $PKGSTATE/installed/NAME holding the installed version; the repositories
# are $PKGSTATE/repo/NAME holding the candidate. Every call is appended to
# $PKGSTATE/log as "prog args...".
prog=$(basename "$0")
echo "$prog $*" >>"$PKGSTATE/log"
db=$PKGSTATE/installed
repo=$PKGSTATE/repo
mkdir -p "$db" "$repo"

# check NAME: fail the whole transaction when the repositories lack it.
check() {
	[ -f "$repo/$1" ] || { echo "E: Unable to locate package $1" >&2; exit 100; }
}
# put NAME [VERSION]: install NAME at VERSION or the candidate.
put() {
	v=$2
	[ -n "$v" ] || v=$(cat "$repo/$1")
	printf '%s' "$v" >"$db/$1"
}
# rpmname SPEC: the repository name SPEC (name or name-version) starts with.
rpmname() {
	for f in "$repo"/*; do
		n=${f##*/}
		case $1 in "$n" | "$n"-*) echo "$n"; return;; esac
	done
	echo "$1"
}

case $prog in
dpkg-query)
	shift 3 # -W -f=... --
	rc=0
	for n; do
		if [ -f "$db/$n" ]; then printf '%s\tii \t%s\n' "$n" "$(cat "$db/$n")"
		else echo "dpkg-query: no packages found matching $n" >&2; rc=1; fi
	done
	exit $rc;;
apt-cache)
	shift 2 # policy --
	for n; do
		echo "$n:"
		if [ -f "$repo/$n" ]; then echo "  Candidate: $(cat "$repo/$n")"; else echo "  Candidate: (none)"; fi
	done;;
apt-get)
	while [ $# -gt 0 ]; do case $1 in -o) shift 2;; -*) shift;; *) break;; esac; done
	cmd=$1; shift; [ "$1" = -- ] && shift
	case $cmd in
	update) touch "$PKGSTATE/refreshed";;
	install)
		for a; do check "${a%%=*}"; done
		for a; do case $a in *=*) put "${a%%=*}" "${a#*=}";; *) put "$a";; esac; done;;
	remove) for n; do rm -f "$db/$n"; done;;
	esac;;
rpm)
	shift 4 # -q --qf FMT --
	rc=0
	for n; do
		if [ -f "$db/$n" ]; then printf '%s\t%s\n' "$n" "$(cat "$db/$n")"
		else echo "package $n is not installed"; rc=$((rc + 1)); fi
	done
	exit $rc;;
dnf)
	while [ $# -gt 0 ]; do case $1 in -*) shift;; *) break;; esac; done
	cmd=$1; shift
	case $cmd in
	makecache) touch "$PKGSTATE/refreshed";;
	repoquery)
		shift 5 # --latest-limit 1 --qf FMT --
		for n; do [ -f "$repo/$n" ] && printf '%s\t%s\n' "$n" "$(cat "$repo/$n")"; done;;
	install)
		[ "$1" = -- ] && shift
		for a; do check "$(rpmname "$a")"; done
		for a; do n=$(rpmname "$a"); v=${a#"$n"}; put "$n" "${v#-}"; done;;
	remove) [ "$1" = -- ] && shift; for n; do rm -f "$db/$n"; done;;
	esac;;
apk)
	cmd=$1; shift
	case $cmd in
	update) touch "$PKGSTATE/refreshed";;
	info) for f in "$db"/*; do [ -f "$f" ] && echo "${f##*/}-$(cat "$f")"; done;;
	list) for n; do [ -f "$repo/$n" ] && echo "$n-$(cat "$repo/$n") x86_64 {$n} (MIT)"; done;;
	add)
		for a; do check "${a%%=*}"; done
		for a; do case $a in *=*) put "${a%%=*}" "${a#*=}";; *) put "$a";; esac; done;;
	del) for n; do rm -f "$db/$n"; done;;
	esac;;
*) echo "pkgtool: unknown program $prog" >&2; exit 127;;
esac
exit 0

#!/bin/sh
# arpcheck: after install or upgrade (dpkg: postinst configure; rpm: %post 1 or 2).
# Gives the binary its two capabilities (never a setuid bit), creates the
# user and directory the units use, and restarts arpcheck-watch if it was
# running. Enables nothing.
set -e
case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# CAP_NET_RAW sends ARP requests, CAP_NET_ADMIN writes neighbour entries.
# The units get theirs from AmbientCapabilities=, so a file system without
# extended attributes only costs interactive use.
if ! setcap cap_net_raw,cap_net_admin=ep /usr/bin/arpcheck; then
	echo "arpcheck: could not give /usr/bin/arpcheck CAP_NET_RAW and CAP_NET_ADMIN; run it as root" >&2
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers arpcheck.conf
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create arpcheck.conf
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl try-restart arpcheck-watch.service
fi
exit 0

#!/bin/sh
# arpcheck: after removal. dpkg's purge (and rpm's erase, %postun 0)
# removes what arpcheck and this package's install made outside the
# package's files: the metrics file, the lock files, the textfile
# directory if it is empty, and the arpcheck user and group.
set -e
case "$1" in
purge | 0) ;;
remove)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	exit 0
	;;
*) exit 0 ;;
esac

rm -f /var/lib/node_exporter/textfile_collector/arpcheck.prom /run/arpcheck.lock
rm -rf /run/arpcheck
# Only if empty: node_exporter may keep other collectors' files there.
rmdir /var/lib/node_exporter/textfile_collector 2>/dev/null || true
rmdir /var/lib/node_exporter 2>/dev/null || true
if getent passwd arpcheck >/dev/null; then
	userdel arpcheck || true
fi
if getent group arpcheck >/dev/null; then
	groupdel arpcheck || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0

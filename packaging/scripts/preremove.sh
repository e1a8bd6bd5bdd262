#!/bin/sh
# arpcheck: before removal (dpkg: prerm remove; rpm: %preun 0). Stops and
# disables the units, so no enablement symlink is left behind.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl disable --now arpcheck.timer arpcheck.service arpcheck-watch.service >/dev/null 2>&1 || true
	else
		systemctl disable arpcheck.timer arpcheck.service arpcheck-watch.service >/dev/null 2>&1 || true
	fi
fi
exit 0

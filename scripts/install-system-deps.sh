#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Vigil's demo and tests use, when missing:
#   redis-server (embedded Redis), ffmpeg (video tools), prometheus + promtool (metrics tests),
#   the GStreamer RTSP server with python3-gi (a real RTSP camera in tests).
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v gst-inspect-1.0 >/dev/null 2>&1 || missing+=(gstreamer1.0-tools)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" >/dev/null 2>&1; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "vigil setup: missing system packages: ${missing[*]}" >&2
  echo "vigil setup: run as root (or: sudo apt-get install -y ${missing[*]}); the demo still runs without them" >&2
  echo "vigil setup: if pip's redis-server wheel is installed, Vigil uses it as the embedded Redis" >&2
  exit 0
fi
echo "vigil setup: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg run (unattended upgrades, a second `make`) instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The first GStreamer start after install builds the plugin cache (up to ~12 s); do it now.
command -v gst-inspect-1.0 >/dev/null 2>&1 && gst-inspect-1.0 >/dev/null 2>&1 || true

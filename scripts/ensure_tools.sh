#!/usr/bin/env bash
# Make sure the system tools the project needs are present: install them with apt-get when running as root,
# otherwise say exactly what to install. Idempotent and quick when everything is there.
# Usage: scripts/ensure_tools.sh TOOL...   (known tools: iverilog, make, g++; Verilator builds with make + g++)
set -euo pipefail
declare -A PKG=([iverilog]=iverilog [make]=make [g++]=g++)
missing=()
for tool in "$@"; do
  [ -n "${PKG[$tool]:-}" ] || { echo "ensure_tools: unknown tool '$tool'" >&2; exit 2; }
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_tools: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "ensure_tools: missing ${missing[*]}. Install it with: sudo apt-get install ${missing[*]}" \
     "(Debian/Ubuntu), then run make again." >&2
exit 1

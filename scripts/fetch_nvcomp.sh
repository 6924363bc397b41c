#!/usr/bin/env bash
# Fetch nvCOMP's Python wheels for CUDA 13 (nvidia-nvcomp-cu13 and
# nvidia-libnvcomp-cu13 6.0.0.12, NVIDIA's licence; a peer for benchmarks
# only, never linked) from PyPI into a cache outside the repository, unpack
# them, and print the directory to put on PYTHONPATH for
# scripts/peers_nvcomp.py:
#
#   PYTHONPATH=$(scripts/fetch_nvcomp.sh) python3 scripts/peers_nvcomp.py ...
#
# WCODEC_CACHE defaults to ~/.cache/wcodec. The wheels are checked against
# their sha256 before they are unpacked.
set -euo pipefail
cache="${WCODEC_CACHE:-$HOME/.cache/wcodec}"
ver=6.0.0.12
site="$cache/nvcomp-$ver/site"
if [ -f "$site/.complete" ]; then
  echo "$site"; exit 0
fi
declare -A want=(
  [nvidia_nvcomp_cu13]=8386ba3ab6c968d001138eda0f66fe7b7a847e7241384a63232b1c2d50a79d74
  [nvidia_libnvcomp_cu13]=d1cf156f7885b9b1ad17ac0059b678e04869466f81207e51fed330f8ffbfcd5a
)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" \
  "nvidia-nvcomp-cu13==$ver" "nvidia-libnvcomp-cu13==$ver" >&2
mkdir -p "$tmp/site"
for name in "${!want[@]}"; do
  whl=$(ls "$tmp/$name-$ver"-*.whl)
  got=$(sha256sum "$whl" | cut -d' ' -f1)
  if [ "$got" != "${want[$name]}" ]; then
    echo "fetch_nvcomp: $whl: sha256 $got, want ${want[$name]}" >&2; exit 1
  fi
  python3 -m zipfile -e "$whl" "$tmp/site"
done
touch "$tmp/site/.complete"
rm -rf "$site"; mkdir -p "$(dirname "$site")"
mv "$tmp/site" "$site"
echo "$site"

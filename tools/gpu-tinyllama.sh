#!/usr/bin/env bash
# TinyLlama-1.1B-shaped Q8_0 prompt and decode on the GPU (the GPU
# issue's end-to-end target), synthesized on the device machine; carry
# bin/gpu (qinfer.gz) as for tools/gpu-device-run.sh.
set -u
cd "$(dirname "$0")/.."
mkdir -p bin
gunzip -c bin/gpu/qinfer.gz > bin/qinfer && chmod +x bin/qinfer
s=$(date +%s)
timeout 60 ./bin/qinfer synth --quiet --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000 --ctx 2048 --type Q8_0 /tmp/tl.gguf
echo "synth rc=$? $(( $(date +%s) - s )) s" | tee "$OUT/tl.txt"
timeout 70 ./bin/qinfer bench --quiet -m /tmp/tl.gguf -p 512 -n 32 -b 1,32 -r 2 --ctx 512 --device cuda 2>&1 | tee -a "$OUT/tl.txt"
echo "bench rc=$? total $(( $(date +%s) - s )) s" | tee -a "$OUT/tl.txt"

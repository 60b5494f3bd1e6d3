#!/usr/bin/env bash
# One call of the project's device runner: the GPU parity suite and GPU
# benchmarks (tools/gpu-check.sh) and an end-to-end qinfer bench of the
# 168M llama (synthesized there), writing everything to $OUT. Prepare on
# the development machine: test binaries and qinfer built with
# CGO_ENABLED=0 and gzipped into bin/gpu/ (cuda.test.gz, engine.test.gz,
# qinfer.gz), test models in carry/testdata (./build.sh gpu-check copies
# them); carry bin/gpu and carry. docs/benchmarks-gpu.md has the output.
set -u
cd "$(dirname "$0")/.."
mkdir -p bin
for f in cuda.test engine.test qinfer; do gunzip -c bin/gpu/$f.gz > bin/$f && chmod +x bin/$f; done
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" 2>&1
cat "$OUT/nvidia-smi.csv"
./bin/qinfer devices > "$OUT/devices.txt" 2>&1; cat "$OUT/devices.txt"
GPU_CHECK_OUT=$OUT BENCHTIME=${BENCHTIME:-5x} timeout ${CHECK_S:-230} tools/gpu-check.sh > "$OUT/gpu-check.stdout" 2>&1
echo "gpu-check rc=$?"
grep -E '^(--- FAIL|FAIL|ok |[a-z]+\.test status)' "$OUT/gpu-check.stdout" | head -30
timeout 40 ./bin/qinfer synth --quiet --dim 1024 --layers 8 --heads 16 --ffn 2816 --vocab 32000 --type Q8_0 /tmp/m168-q8_0.gguf
timeout 40 ./bin/qinfer synth --quiet --dim 1024 --layers 8 --heads 16 --ffn 2816 --vocab 32000 --type Q4_0 /tmp/m168-q4_0.gguf
for m in q8_0 q4_0; do
  timeout ${E2E_S:-45} ./bin/qinfer bench --quiet -m /tmp/m168-$m.gguf -p 128,512 -n 32 -b 1,8,32 -r 3 --device cuda > "$OUT/bench-e2e-$m.md" 2>&1
  echo "bench $m rc=$?"; cat "$OUT/bench-e2e-$m.md"
done
timeout 30 ./bin/qinfer bench --quiet -m /tmp/m168-q8_0.gguf -p 128 -n 32 -b 1,8,32 -r 3 --device cuda --graphs=false > "$OUT/bench-e2e-q8_0-nographs.md" 2>&1
echo "bench nographs rc=$?"; cat "$OUT/bench-e2e-q8_0-nographs.md"
tail -40 "$OUT/report.md" 2>/dev/null

#!/usr/bin/env bash
# GPU check: the GPU backend's tests and benchmarks on a machine with an
# NVIDIA GPU and no Go toolchain. `./build.sh gpu-check` prepares what it
# needs on a development machine:
#   bin/cuda.test     the cuda package's tests, built with CGO_ENABLED=0
#   bin/engine.test   host/engine's (its GPU tests: backend selection)
#   carry/testdata/   the llama.cpp test models and references it reads
# and runs this script when a GPU is present here; otherwise carry the
# repository with bin/ and carry/ to the GPU machine and run
# tools/gpu-check.sh from the repository root there.
#
# Tests run with QINFER_REQUIRE_GPU=1, so a missing or unusable GPU is a
# failure, not a skip. Output goes to $GPU_CHECK_OUT (default
# carry/gpu-check-out, gitignored): tests.log, bench.txt and report.md, a
# markdown table of the benchmarks against their targets. The exit status
# is non-zero when a test or benchmark failed. BENCHTIME (default 20x) is
# go test's -benchtime.
#
# With the project's device runner: ./build.sh gpu-check here, then run
#   GPU_CHECK_OUT=$OUT tools/gpu-check.sh
# carrying bin/cuda.test, bin/engine.test and carry/testdata (about 57 MiB).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

out=${GPU_CHECK_OUT:-$root/carry/gpu-check-out}
mkdir -p "$out"
export QINFER_REQUIRE_GPU=1
export QINFER_TESTDATA=${QINFER_TESTDATA:-$root/carry/testdata}
benchtime=${BENCHTIME:-20x}
for b in cuda engine; do
	[ -x "$root/bin/$b.test" ] || { echo "gpu-check: bin/$b.test missing: run ./build.sh gpu-check on a machine with Go" >&2; exit 2; }
done

{
	echo "# GPU check"
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	if command -v nvidia-smi >/dev/null; then
		echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
	fi
	echo "- test data: $QINFER_TESTDATA"
	echo
} >"$out/report.md"

# Tests, from each package's folder as go test would run them: every test
# of cuda (those without a GPU part are cheap), the GPU ones of host/engine
# (backend selection on the real driver).
echo "== tests (QINFER_REQUIRE_GPU=1)"
{
	(cd cuda && "$root/bin/cuda.test" -test.count=1 -test.v -test.timeout=20m 2>&1)
	echo "cuda.test status $?"
	(cd host/engine && "$root/bin/engine.test" -test.count=1 -test.v -test.timeout=10m -test.run 'GPU|CUDA|Device' 2>&1)
	echo "engine.test status $?"
} | tee "$out/tests.log" | grep -E '^(--- |PASS|FAIL|ok |[a-z]+\.test status)'
test_status=0
grep -q '^[a-z]*\.test status [^0]' "$out/tests.log" && test_status=1
passed=$(grep -c -- '--- PASS: .*/gpu ' "$out/tests.log" || true)
failed=$(grep -c -- '--- FAIL' "$out/tests.log" || true)
skipped=$(grep -c -- '--- SKIP: .*/gpu ' "$out/tests.log" || true)
{
	echo "## Tests"
	echo
	echo "GPU subtests: $passed passed, $skipped skipped, $failed failures (any level); status $test_status."
	echo
	if [ "$failed" != 0 ]; then
		echo '```'
		grep -- '--- FAIL' "$out/tests.log"
		echo '```'
		echo
	fi
	grep -E 'logits: |p[0-9]: max' "$out/tests.log" | sed 's/^ *backend_e2e_test.go:[0-9]*: /- /' | head -40
	echo
} >>"$out/report.md"

echo "== benchmarks (-test.benchtime $benchtime)"
(cd cuda && "$root/bin/cuda.test" -test.run '^$' -test.bench . -test.benchtime "$benchtime" -test.timeout=20m 2>&1) | tee "$out/bench.txt"
bench_status=${PIPESTATUS[0]}

# Benchmark lines: name, iterations, then "value unit" pairs.
awk -v copy="2984" '
	BEGIN {
		print "## Benchmarks (H100 targets: Q8_0 GEMV >= 90% of copy bandwidth; W8 GEMM >= 60% of cuBLASLt)"
		print ""
		print "| benchmark | time | GB/s | % of copy | TOPS | % of cuBLASLt | target |"
		print "| --- | --- | --- | --- | --- | --- | --- |"
	}
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		t = ""; gbs = ""; pc = ""; tops = ""; pcb = ""
		for (i = 3; i < NF; i += 2) {
			v = $i; u = $(i + 1)
			if (u ~ /^us\//) t = v " µs"
			else if (u == "GB/s") gbs = v
			else if (u == "%copy") pc = v
			else if (u == "TOPS") tops = v
			else if (u == "%cublasLt") pcb = v
		}
		target = ""
		if (name ~ /GEMV\/Q8_0\/.*\/r2$/) target = (pc + 0 >= 90 ? "met" : "missed (90%)")
		if (pcb != "") target = (pcb + 0 >= 60 ? "met" : "missed (60%)")
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", name, t, gbs, pc, tops, pcb, target
	}' "$out/bench.txt" >>"$out/report.md"
echo >>"$out/report.md"
echo "benchmark status $bench_status" >>"$out/report.md"

echo
cat "$out/report.md"
[ "$test_status" = 0 ] && [ "$bench_status" = 0 ]

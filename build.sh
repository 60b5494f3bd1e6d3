#!/usr/bin/env bash
# qinfer's build entry point. Subcommands:
#   kernels    nvcc: kernels/*.cu -> kernels/ptx/*.ptx (+ ptxas register/spill report for sm_80, sm_90)
#   build      go build -> bin/qinfer (TAGS=gorgonia for the cgo gorgonia.org/cu binding)
#   run        the main job: build, then run qinfer on this machine (GPU when usable, else CPU)
#   test       gofmt check, go vet, go test ./... (and -race on the parallel CPU paths)
#   bench      CPU kernel benchmarks (go test -bench) and qinfer bench
#   gpu-check  GPU parity suite and GPU benchmarks with QINFER_REQUIRE_GPU=1
set -euo pipefail
cd "$(dirname "$0")"

GO=${GO:-go}
TAGS=${TAGS:-}
: "${QINFER_TESTDATA:=$(cd .. && pwd)/shared/testdata}"
export QINFER_TESTDATA

die() { echo "build.sh: $*" >&2; exit 1; }

cmd_build() {
	mkdir -p bin
	local tagflag=()
	[ -n "$TAGS" ] && tagflag=(-tags "$TAGS")
	if [ -z "$TAGS" ]; then
		# The default binary needs no cgo: libcuda is loaded at run time.
		CGO_ENABLED=0 $GO build "${tagflag[@]}" -o bin/qinfer ./cmd/qinfer
	else
		$GO build "${tagflag[@]}" -o bin/qinfer ./cmd/qinfer
	fi
	echo "built bin/qinfer${TAGS:+ (tags: $TAGS)}"
}

cmd_run() {
	cmd_build
	echo "== qinfer devices"
	bin/qinfer devices
	echo
	echo "== qinfer run (embedded demo)"
	bin/qinfer run "$@"
}

cmd_test() {
	local files
	files=$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')
	local bad
	bad=$(gofmt -l $files)
	[ -z "$bad" ] || die "gofmt would change: $bad"
	$GO vet ./...
	CGO_ENABLED=0 $GO build ./...
	$GO test -count=1 -timeout 30m ./...
	# The parallel CPU paths under the race detector (needs cgo).
	if [ "$($GO env CGO_ENABLED)" = "1" ] && command -v gcc >/dev/null; then
		$GO test -count=1 -race -short -timeout 20m ./fallback/...
	else
		echo "build.sh test: no cgo toolchain, skipping -race run"
	fi
	# Go may fuse x*y+z into one FMA where the target has one (arm64
	# always, amd64 from GOAMD64=v3), which changes the last bits of code
	# that must round as llama.cpp does. GOAMD64=v3 lets the compiler fuse
	# here too, so the exactness tests catch a missing float32() rounding.
	if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && grep -qw bmi2 /proc/cpuinfo; then
		GOAMD64=v3 $GO test -count=1 -short -timeout 20m ./host/quant/... ./fallback/...
	else
		echo "build.sh test: CPU without GOAMD64=v3 features, skipping the fused-FMA run"
	fi
}

cmd_bench() {
	$GO test -run '^$' -bench . -benchtime "${BENCHTIME:-20x}" ./fallback/kernels/
	cmd_build
	bin/qinfer bench "$@"
}

# gpu-check: the GPU machine has no Go, so the cuda and host/engine tests
# are built here (CGO_ENABLED=0: the real driver through purego, no
# emulator) into bin/, with the llama.cpp test files they read copied to carry/
# (both gitignored), and tools/gpu-check.sh runs them there with
# QINFER_REQUIRE_GPU=1 and writes a report. With a GPU here, it runs now.
# GPU_CHECK_MODELS picks the models to carry (the GPU runner carries at
# most 64 MiB; tiny-f32 alone is 17 MiB and is left out by default).
cmd_gpu_check() {
	mkdir -p bin carry
	CGO_ENABLED=0 $GO test -c -ldflags='-s -w' -o bin/cuda.test ./cuda
	CGO_ENABLED=0 $GO test -c -ldflags='-s -w' -o bin/engine.test ./host/engine
	local models=${GPU_CHECK_MODELS:-tiny-F16 tiny-Q8_0 tiny-Q4_0 gqa-Q8_0 gqa-Q4_0}
	local src=$QINFER_TESTDATA/llamacpp dst=carry/testdata/llamacpp m
	rm -rf carry/testdata
	mkdir -p "$dst/refs"
	for m in $models; do
		[ -f "$src/$m.gguf" ] || die "gpu-check: $src/$m.gguf not found (set QINFER_TESTDATA)"
		cp "$src/$m.gguf" "$dst/"
		cp "$src/refs/$m".* "$dst/refs/"
	done
	echo "gpu-check: bin/cuda.test, bin/engine.test and carry/testdata ($(du -sh bin/cuda.test bin/engine.test carry | awk '{print $1}' | paste -sd+)) ready"
	if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
		QINFER_TESTDATA=$(pwd)/carry/testdata tools/gpu-check.sh "$@"
	else
		echo "gpu-check: no GPU here; run tools/gpu-check.sh on the GPU machine with bin/ and carry/ (it needs no Go)"
	fi
}

cmd_kernels() {
	command -v nvcc >/dev/null || die "nvcc not found: install Debian's non-free nvidia-cuda-toolkit (see README)"
	command -v ptxas >/dev/null || die "ptxas not found (it comes with nvcc)"
	local nvcc_major
	nvcc_major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
	mkdir -p kernels/ptx
	local tmp
	tmp=$(mktemp -d)
	local src base hash out arch target spilled="" failed=""
	for src in kernels/*.cu; do
		base=$(basename "$src" .cu)
		# The hash covers the source and the local headers it includes, in
		# order (kernels.SourceHash), so a header change marks its PTX stale.
		# shellcheck disable=SC2046
		hash=$(cat "$src" $(sed -n 's|^#include "\(.*\)"|kernels/\1|p' "$src") | sha256sum | cut -d' ' -f1)
		# Each source lists the virtual architectures it targets in a line
		# "// qinfer-arch: compute_61 compute_80"; sm_90a kernels need nvcc >= 12.
		for arch in $(sed -n 's#^// qinfer-arch: ##p' "$src"); do
			if [ "$arch" = compute_90a ] && [ "$nvcc_major" -lt 12 ]; then
				echo "skip $src for $arch: nvcc $nvcc_major < 12 (compile it on the GPU machine)"
				continue
			fi
			out=kernels/ptx/$base.$arch.ptx
			# -fmad=false: nvcc would otherwise contract a*b+c into one FMA
			# wherever it likes, so the GPU would round differently from the
			# emulator (g++, no contraction) that the tests check the kernels
			# with, and from the CPU. Kernels that want an FMA say __fmaf_rn.
			# (An H100 run showed it: gqa-Q8_0 prompt 2 off by 0.18 on the
			# GPU, 1e-6 on the emulator.)
			nvcc -ptx -O3 -fmad=false -std=c++17 -arch="$arch" -o "$tmp/$base.ptx" "$src" || { rm -rf "$tmp"; die "nvcc failed on $src for $arch"; }
			{ echo "// qinfer-source-sha256: $hash"; cat "$tmp/$base.ptx"; } >"$out"
			echo "wrote $out"
			# Assemble each variant for the devices that load it (kernels.Select):
			# compute_61 on Pascal to Turing, compute_80 on Ampere and Hopper.
			local targets="sm_80 sm_90"
			[ "$arch" = compute_61 ] && targets="sm_61 sm_75"
			for target in $targets; do
				if ! ptxas -v -arch="$target" -o /dev/null "$out" 2>"$tmp/ptxas.log"; then
					cat "$tmp/ptxas.log" >&2
					failed="$failed $out@$target"
					continue
				fi
				# ptxas prints per entry: "Compiling entry function 'f'",
				# "N bytes stack frame, S bytes spill stores, L bytes spill
				# loads", "Used R registers, M bytes smem".
				awk -v t="$target" -v f="$out" '
					/Compiling entry function/ { match($0, /'"'"'[^'"'"']*'"'"'/); name = substr($0, RSTART + 1, RLENGTH - 2) }
					/bytes spill stores/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "stores,") st = $i; if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "loads") ld = $i } }
					/Used [0-9]+ registers/ {
						regs = ""; smem = 0
						for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^registers,?$/) regs = $i; if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i }
						printf "  %-6s %-24s regs %3s  spill %s/%s  smem %6s%s\n", t, name, regs, st, ld, smem, (st + ld > 0 ? "  SPILLS" : "")
					}' "$tmp/ptxas.log" | sort -k2 | tee "$tmp/report"
				# Spills in the hot kernels (GEMV, GEMM, attention) are bugs.
				spilled="$spilled$(awk '/SPILLS/ && $2 ~ /^qi_(gemv|gemm|attn)_/ { printf " %s@%s", $2, $1 }' "$tmp/report")"
			done
		done
	done
	rm -rf "$tmp"
	# The emulator (kernels/emu) compiles ../*.cu, which the go command does
	# not hash: this header changes with them, so it rebuilds.
	hash=$(cat kernels/*.cu kernels/*.cuh | sha256sum | cut -d' ' -f1)
	printf '%s\n' "// Generated by ./build.sh kernels: the SHA-256 of kernels/*.cu then kernels/*.cuh," \
		"// so that the go command rebuilds the emulator when a kernel source changes." \
		"#define QI_EMU_SOURCES \"$hash\"" >kernels/emu/sources.h
	[ -z "$failed" ] || die "ptxas failed:$failed"
	[ -z "$spilled" ] || die "register spills in hot kernels:$spilled"
	echo "ptxas: clean (no errors, no spills in hot kernels)"
}

sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
kernels) cmd_kernels "$@" ;;
build) cmd_build "$@" ;;
run) cmd_run "$@" ;;
test) cmd_test "$@" ;;
bench) cmd_bench "$@" ;;
gpu-check) cmd_gpu_check "$@" ;;
*) die "usage: ./build.sh kernels|build|run|test|bench|gpu-check" ;;
esac

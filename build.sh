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
}

cmd_bench() {
	$GO test -run '^$' -bench . -benchtime "${BENCHTIME:-20x}" ./fallback/kernels/
	cmd_build
	bin/qinfer bench "$@"
}

cmd_gpu_check() {
	export QINFER_REQUIRE_GPU=1
	$GO test -count=1 -v -run 'GPU|Parity|CUDA|Device' ./cuda/... ./host/engine/...
	$GO test -run '^$' -bench . -benchtime "${BENCHTIME:-50x}" ./cuda/...
}

cmd_kernels() {
	command -v nvcc >/dev/null || die "nvcc not found: install Debian's non-free nvidia-cuda-toolkit (see README)"
	local nvcc_major
	nvcc_major=$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
	mkdir -p kernels/ptx
	local src base hash out arch
	for src in kernels/*.cu; do
		base=$(basename "$src" .cu)
		hash=$(sha256sum "$src" | cut -d' ' -f1)
		# Each source lists the virtual architectures it targets in a line
		# "// qinfer-arch: compute_61 compute_80"; sm_90a kernels need nvcc >= 12.
		for arch in $(sed -n 's#^// qinfer-arch: ##p' "$src"); do
			if [ "$arch" = compute_90a ] && [ "$nvcc_major" -lt 12 ]; then
				echo "skip $src for $arch: nvcc $nvcc_major < 12 (compile it on the GPU machine)"
				continue
			fi
			out=kernels/ptx/$base.$arch.ptx
			nvcc -ptx -O3 -arch="$arch" -o "$out.tmp" "$src"
			{ echo "// qinfer-source-sha256: $hash"; cat "$out.tmp"; } >"$out"
			rm -f "$out.tmp"
			echo "wrote $out"
			local sm=${arch/compute_/sm_}
			for target in sm_80 sm_90; do
				[ "${sm%a}" \> "$target" ] && continue
				echo "  ptxas $target:"
				ptxas -v -arch="$target" -o /dev/null "$out" 2>&1 |
					sed -n 's/.*Compiling entry function .\([^'"'"']*\).*/    \1/p; s/.*Used \([0-9]*\) registers.*/      registers \1/p; s/.*\([0-9]* bytes spill stores\).*/      \1/p'
			done
		done
	done
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

#!/usr/bin/env bash
# Rebuilds qinfer's embedded default model from scratch:
#
#   prep     select the Go standard library sources of this machine's Go,
#            learn the vocabulary, tokenize with qinfer's tokenizer
#   train    train the llama-architecture model with PyTorch on the CPU
#   convert  write host/builtin/model.gguf with qinfer's GGUF writer and
#            Q8_0 quantizer
#   eval     held-out perplexity and sample completions with qinfer itself
#
# Usage: tools/train/train.sh [stage...]   (default: all four, in order)
#
# Everything a stage prints is appended to tools/train/train.log (a full
# run starts it afresh). Intermediate files go to tools/train/work/.
# Needs Go, Debian's python3-torch and python3-numpy (/usr/bin/python3), and
# for a run of minutes rather than hours an optimized BLAS
# (apt-get install libopenblas0-openmp): Debian's torch calls whichever
# libblas.so.3 is installed, and the reference one is about 5x slower.
#
# Settings (environment): TRAIN_MINUTES (time budget, default 14),
# TRAIN_THREADS (default 1), TRAIN_ARGS (extra train.py flags). On a
# shared machine one thread trains faster than two: OpenMP threads spin
# at every barrier while their partner is descheduled (measured here: 2
# threads 100-400 tokens/s, 1 thread 1300, under a load of 5 on 2 cores).
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=tools/train/work
log=tools/train/train.log
py=/usr/bin/python3
mkdir -p "$work" host/builtin/testdata

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then
	stages=(prep train convert eval)
	: >"$log"
fi

# Model shape and training recipe: the shape is the one
# docs/default-model.md describes; change both together.
model_args=(--dim 128 --layers 4 --heads 4 --kv-heads 2 --ffn 352 --ctx 256
	--batch 4 --lr 5e-3 --warmup 50 --steps 100000 --seed 1 --eval-chunks 64)

run() {
	echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') $*" | tee -a "$log"
	"$@" 2>&1 | tee -a "$log"
}

for stage in "${stages[@]}"; do
	case "$stage" in
	prep)
		run go version
		run go run ./tools/train/prep -goroot "$(go env GOROOT)" -out "$work" \
			-manifest tools/train/manifest.txt -prompts host/builtin/prompts.txt
		;;
	train)
		if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
			echo "train.sh: $py cannot import torch and numpy (apt-get install python3-torch python3-numpy)" >&2
			exit 1
		fi
		case "$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)" in
		*openblas* | *blis* | *mkl*) ;;
		*) echo "train.sh: warning: no optimized BLAS found; training will be slow (apt-get install libopenblas0-openmp)" | tee -a "$log" ;;
		esac
		run "$py" tools/train/train.py --data "$work" --out "$work" "${model_args[@]}" \
			--minutes "${TRAIN_MINUTES:-14}" --threads "${TRAIN_THREADS:-1}" \
			--ref host/builtin/testdata/reference.json ${TRAIN_ARGS:-}
		;;
	convert)
		run go run ./tools/train/convert -config "$work/config.json" -weights "$work/weights.bin" \
			-vocab "$work/vocab.gguf" -name qinfer-gostd-1m -out host/builtin/model.gguf
		;;
	eval)
		run go run ./tools/train/evaluate -model host/builtin/model.gguf -eval "$work/eval.bin" \
			-chunks 64 -prompts host/builtin/prompts.txt -python "$work/eval-python.json" \
			-out tools/train/eval.json
		;;
	*)
		echo "train.sh: unknown stage $stage (prep, train, convert, eval)" >&2
		exit 2
		;;
	esac
done

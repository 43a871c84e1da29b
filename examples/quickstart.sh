#!/bin/sh
# quickstart.sh - build gemma3n and chat with a model in one step.
#
#   examples/quickstart.sh [MODEL_DIR] [PROMPT]
#
# 1. installs the build dependencies with apt-get if they are missing
#    (build-essential cmake libopenblas-dev pkg-config; sudo when not root),
# 2. configures and builds the command-line tool in ./build (the repository
#    root's build/; set BUILD_DIR to use another directory),
# 3. runs `build/gemma3n generate --chat` on MODEL_DIR, a Hugging Face
#    checkpoint directory such as a download of google/gemma-3n-E2B-it (or a
#    .gguf file made by `gemma3n convert`).
#    Without MODEL_DIR it uses the bundled tests/data/tiny_chat model,
#    whose weights are random: that only shows the build works.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-"$ROOT/build"}
MODEL_DIR=${1:-}
PROMPT=${2:-"Explain in two sentences why the sky is blue."}

say() { printf '%s\n' "$*" >&2; }

have_deps() {
    command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 &&
        command -v cmake >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1 &&
        pkg-config --exists openblas
}

install_deps() {
    packages="build-essential cmake libopenblas-dev pkg-config"
    if ! command -v apt-get >/dev/null 2>&1; then
        say "quickstart: missing build tools and no apt-get here: install a C compiler, make,"
        say "cmake, pkg-config and OpenBLAS (headers + pkg-config file), then run me again."
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            say "quickstart: need root to install: apt-get install $packages"
            exit 1
        fi
        sudo="sudo"
    fi
    say "quickstart: installing $packages"
    # $sudo may be empty and $packages is a list: both are split on purpose.
    # shellcheck disable=SC2086
    $sudo apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $packages
}

random_weights_banner() {
    cat >&2 <<'EOF'
=====================================================================
 No model directory given: using the bundled test model
 tests/data/tiny_chat. Its weights are RANDOM, so the text below is
 gibberish: it only shows that the build and the pipeline work.

 For real answers, download a Gemma 3n checkpoint (accept the Gemma
 license on huggingface.co first), e.g.
     huggingface-cli download google/gemma-3n-E2B-it --local-dir gemma-3n-E2B-it
 and point this script at that directory:
     examples/quickstart.sh gemma-3n-E2B-it "Why is the sky blue?"
=====================================================================
EOF
}

have_deps || install_deps

jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
say "quickstart: building in $BUILD_DIR (a minute or so the first time)"
cmake -S "$ROOT" -B "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" --target gemma3n_cli -j "$jobs" >/dev/null

if [ -z "$MODEL_DIR" ]; then
    random_weights_banner
    MODEL_DIR="$ROOT/tests/data/tiny_chat"
    N_PREDICT=32
else
    N_PREDICT=256
    if [ ! -f "$MODEL_DIR/config.json" ] && [ ! -f "$MODEL_DIR" ]; then
        say "quickstart: $MODEL_DIR: pass a Hugging Face model directory (with config.json) or a .gguf file"
        exit 1
    fi
fi

say "quickstart: $BUILD_DIR/gemma3n generate -m $MODEL_DIR --chat -p \"$PROMPT\" -n $N_PREDICT"
exec "$BUILD_DIR/gemma3n" generate -m "$MODEL_DIR" --chat -p "$PROMPT" -n "$N_PREDICT"

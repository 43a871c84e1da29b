#!/bin/sh
# The documented install route, end to end and offline: a venv that sees the
# system NumPy, `pip install --no-build-isolation --no-index .`, then a smoke
# test from outside the source tree. Usage: pip_install_check.sh PYTHON SRC_DIR WORK_DIR
set -eu
python=$1 src=$2 work=$3
rm -rf "$work/venv"
mkdir -p "$work"
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-build-isolation --no-index "$src"
cd "$work"
"$work/venv/bin/python" - "$src/tests/data/tiny_chat" <<'PY'
import os, sys
import gemma3n
assert os.path.dirname(gemma3n.__file__).startswith(sys.prefix), gemma3n.__file__
pkg = os.path.dirname(gemma3n.__file__)
assert os.path.exists(os.path.join(pkg, "py.typed")) and os.path.exists(os.path.join(pkg, "__init__.pyi"))
with gemma3n.Model(sys.argv[1]) as m:
    r = m.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=4, temperature=0)
    assert r["usage"]["completion_tokens"] <= 4, r
print("pip install --no-build-isolation: ok,", gemma3n.__version__, "from", pkg)
PY

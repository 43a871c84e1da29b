#!/usr/bin/env bash
# run.sh - gemma3n vs llama.cpp on the same GGUF file, 2 threads: pp128,
# pp512, tg128 tok/s, time to first token, load time, peak RSS; medians,
# our/llama.cpp ratios, the memory bandwidth and the decode bound it implies,
# and the speed issue's targets (PASS/FAIL, informational). See README.md.
#
#   bench/run.sh [-r REPS] [--q8] [--reconvert]
#
#   1. builds gemma3n (Release), gemma3n-synth and membw;
#   2. writes the synthetic full-size E2B checkpoint (random weights, the
#      released shapes; ~10 GB) and converts it to Q4_0 (and with --q8 Q8_0)
#      GGUF, all cached between runs;
#   3. installs llama.cpp's prebuilt CPU libraries from npm (node-llama-cpp,
#      llama.cpp release v0.5.0, --ignore-scripts: nothing compiled) and
#      builds llama_cross (dlopens them) against the bundled llama.h;
#   4. measures the read bandwidth (membw), then runs both engines on the
#      same GGUF, alternating (each repetition swaps which goes first), one
#      process per test and repetition (gemma3n bench -r 1 / llama_cross
#      --bench), each test REPS times, 4096-token context. Every process
#      first loads the model and answers a 16-token prompt (load, first
#      token: cold, warm page cache), then runs its test in a fresh context:
#        pp512  512-token prompt in one call: pp512 tok/s, peak RSS
#        pp128  128-token prompt in one call: pp128 tok/s
#        tg128  16-token prompt, then 128 tokens one at a time: tg128 tok/s
#      and prints medians, ratios and targets; writes results.{jsonl,json,md}.
#
# Environment: GM_BENCH_CACHE (default ~/.cache/gemma3n-bench: build/, the
# checkpoint, the GGUF files, results-*/), GM_BENCH_BUILD (build dir, default
# $GM_BENCH_CACHE/build), GM_BENCH_SYNTH (an existing synthetic E2B
# directory to use instead of writing one), GM_BENCH_Q4 / GM_BENCH_Q8
# (existing GGUF files to use), LLAMA_CROSS_CACHE (npm install, shared with
# bench/llama_cross/run.sh; default ~/.cache/gemma3n-llama-cross), THREADS
# (2), CTX (4096), PP_SHORT (128), PP_LONG (512), TG (128), TTFT_P (16).
# GM_BENCH_IDLE_WAIT (default 300): before each run, wait up to this many
# seconds for the CPUs to be idle (< 15 % busy over 1 s; other processes
# make both engines slower, llama.cpp's spinning threads much more so); the
# busy share seen just before each run is recorded and printed.
# Exit status 0 unless a step fails (targets are informational).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
REPS=3
Q8=0
RECONVERT=0
while [ $# -gt 0 ]; do
  case "$1" in
    -r) REPS=$2; shift 2 ;;
    --q8) Q8=1; shift ;;
    --reconvert) RECONVERT=1; shift ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: bench/run.sh [-r REPS] [--q8] [--reconvert]" >&2; exit 2 ;;
  esac
done
CACHE=${GM_BENCH_CACHE:-$HOME/.cache/gemma3n-bench}
BUILD=${GM_BENCH_BUILD:-$CACHE/build}
LCACHE=${LLAMA_CROSS_CACHE:-$HOME/.cache/gemma3n-llama-cross}
THREADS=${THREADS:-2}
CTX=${CTX:-4096}
PP_SHORT=${PP_SHORT:-128}
PP_LONG=${PP_LONG:-512}
TG=${TG:-128}
TTFT_P=${TTFT_P:-16}
NLC_VERSION=3.22.1
BINS=$LCACHE/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
SRC=$LCACHE/src
OUT=$CACHE/results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$CACHE" "$LCACHE" "$OUT"
LOG=$OUT/log.txt
: > "$LOG"

fail() { echo "bench/run.sh: $*" >&2; echo "(log: $LOG)" >&2; tail -20 "$LOG" >&2; exit 1; }

# ---- 1. build ----
echo "== building gemma3n, gemma3n-synth, membw (Release) in $BUILD"
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGM_BUILD_BENCH=ON -DGM_BUILD_TESTS=OFF \
  -DGM_BUILD_EXAMPLES=OFF -DGM_BUILD_LUA=OFF -DGM_BUILD_PYTHON=OFF >> "$LOG" 2>&1 || fail "cmake configure failed"
cmake --build "$BUILD" -j "$THREADS" --target gemma3n_cli gemma3n-synth membw >> "$LOG" 2>&1 || fail "build failed"
GM=$BUILD/gemma3n

# ---- 2. the synthetic E2B and its GGUF files ----
SYNTH=${GM_BENCH_SYNTH:-$CACHE/E2B}
if [ ! -f "$SYNTH/model.safetensors.index.json" ]; then
  echo "== writing the synthetic E2B checkpoint (~10 GB) into $SYNTH"
  rm -rf "$SYNTH"
  "$BUILD/bench/gemma3n-synth" E2B "$SYNTH" >> "$LOG" 2>&1 || fail "gemma3n-synth failed"
fi
# The real Gemma 3n tokenizer (the repo's test data; vocab 262144 as E2B's):
# the GGUF then carries a vocabulary, without which llama.cpp refuses it.
for f in tokenizer.json tokenizer_config.json; do
  [ -f "$SYNTH/$f" ] || cp "$REPO/tests/data/tokenizer/$f" "$SYNTH/$f" || fail "copying $f"
done
FMTS=(q4_0)
[ "$Q8" = 1 ] && FMTS+=(q8_0)
declare -A GGUF
GGUF[q4_0]=${GM_BENCH_Q4:-$CACHE/e2b-q4_0.gguf}
GGUF[q8_0]=${GM_BENCH_Q8:-$CACHE/e2b-q8_0.gguf}
for FMT in "${FMTS[@]}"; do
  F=${GGUF[$FMT]}
  if [ ! -s "$F" ] || [ "$RECONVERT" = 1 ]; then
    echo "== converting to $FMT: $F"
    "$GM" convert "$SYNTH" "$F.tmp" --weights "$FMT" --quiet >> "$LOG" 2>&1 || fail "gemma3n convert failed"
    mv "$F.tmp" "$F"
  fi
done

# ---- 3. llama.cpp ----
if [ ! -f "$BINS/libllama.v0.5.0.so" ]; then
  echo "== installing node-llama-cpp@$NLC_VERSION (prebuilt llama.cpp) into $LCACHE"
  npm install --ignore-scripts --no-audit --no-fund --prefix "$LCACHE" \
    "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" >> "$LOG" 2>&1 || fail "npm install failed"
fi
if [ ! -f "$SRC/include/llama.h" ]; then
  echo "== cloning the bundled llama.cpp sources into $SRC (for llama.h)"
  git clone -q "$LCACHE/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$SRC" >> "$LOG" 2>&1 || fail "git clone failed"
fi
cc -std=gnu11 -O2 -Wall -Wextra -I"$SRC/include" -I"$SRC/ggml/include" "$HERE/llama_cross/llama_cross.c" -ldl \
  -o "$BUILD/llama_cross" >> "$LOG" 2>&1 || fail "building llama_cross failed"

# ---- 4. measurements ----
IDLE_WAIT=${GM_BENCH_IDLE_WAIT:-300}
# busy: percentage of CPU time not idle over one second (all cores)
busy() {
  local a b
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local tot=0 idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) i
  for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
  echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
# wait_idle: sets BUSY to the busy share once idle or after $IDLE_WAIT s
wait_idle() {
  local t0=$SECONDS said=0
  BUSY=$(busy)
  while [ "$BUSY" -ge 15 ] && [ $((SECONDS - t0)) -lt "$IDLE_WAIT" ]; do
    [ $said = 0 ] && echo "   (CPUs ${BUSY}% busy with other processes: waiting up to ${IDLE_WAIT}s for idle)" && said=1
    sleep 4; BUSY=$(busy)
  done
}
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $CPU, $(nproc) cores, load average $LOAD_BEFORE"
echo "== memory bandwidth (membw, $THREADS threads, 1 GiB)"
wait_idle
BW_JSON=$("$BUILD/bench/membw" -t "$THREADS" -m 1024 -r 5 --json) || fail "membw failed"
echo "   $BW_JSON"

RES=$OUT/results.jsonl
: > "$RES"
# run ENGINE FMT TEST REP: one process, one JSON line appended to $RES
run() {
  local eng=$1 fmt=$2 test=$3 rep=$4 p n j
  case "$test" in
    pp$PP_LONG) p=$PP_LONG; n=1 ;;
    pp$PP_SHORT) p=$PP_SHORT; n=1 ;;
    tg$TG) p=$TTFT_P; n=$TG ;;
  esac
  wait_idle
  echo "--- $eng $fmt $test rep $rep (CPU ${BUSY}% busy before; load average $(cut -d' ' -f1 /proc/loadavg))" >> "$LOG"
  if [ "$eng" = gemma3n ]; then
    j=$("$GM" bench -m "${GGUF[$fmt]}" -p "$p" -n "$n" -c "$CTX" -r 1 -t "$THREADS" --warmup "$TTFT_P" --json 2>> "$LOG") \
      || fail "gemma3n bench failed ($fmt $test)"
  else
    j=$("$BUILD/llama_cross" "$BINS" "${GGUF[$fmt]}" --bench --p "$p" --n "$n" --ctx "$CTX" --threads "$THREADS" \
      --warmup "$TTFT_P" --quiet --json 2>> "$LOG") || fail "llama.cpp failed ($fmt $test)"
  fi
  echo "$j" >> "$LOG"
  printf '{"engine": "%s", "fmt": "%s", "test": "%s", "rep": %d, "busy_before": %d, "res": %s}\n' \
    "$eng" "$fmt" "$test" "$rep" "$BUSY" "$j" >> "$RES"
  printf '   %-9s %-5s %-6s rep %d (CPU %2d%% busy before): %s\n' "$eng" "$fmt" "$test" "$rep" "$BUSY" "$j"
}
for FMT in "${FMTS[@]}"; do
  echo "== $FMT: ${GGUF[$FMT]} (page cache warmed: read once)"
  cat "${GGUF[$FMT]}" > /dev/null
  for ((R = 1; R <= REPS; R++)); do
    for TEST in "pp$PP_LONG" "pp$PP_SHORT" "tg$TG"; do
      if [ $((R % 2)) = 1 ]; then run gemma3n "$FMT" "$TEST" "$R"; run llama.cpp "$FMT" "$TEST" "$R"
      else run llama.cpp "$FMT" "$TEST" "$R"; run gemma3n "$FMT" "$TEST" "$R"; fi
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 5. summary ----
python3 - "$RES" "$OUT" "$BW_JSON" "${GGUF[q4_0]}" "$CPU" "$LOAD_BEFORE" "$LOAD_AFTER" "$THREADS" "$CTX" \
  "$PP_SHORT" "$PP_LONG" "$TG" "$TTFT_P" "$REPS" "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')" <<'EOF'
import json, os, statistics, struct, sys, time
(res_path, out, bw_json, q4_path, cpu, load_before, load_after, threads, ctx,
 pp_short, pp_long, tg, ttft_p, reps, rev) = sys.argv[1:]
runs = [json.loads(l) for l in open(res_path) if l.strip()]
bw = json.loads(bw_json)["gb_s"]
busy = [r["busy_before"] for r in runs]

def gguf_tensor_bytes(path):
    """{name: bytes} of a GGUF file's tensors (up to the next tensor or the file end)."""
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with open(path, "rb") as f:
        u32 = lambda: struct.unpack("<I", f.read(4))[0]
        u64 = lambda: struct.unpack("<Q", f.read(8))[0]
        string = lambda: f.read(u64()).decode("utf-8", "replace")
        def val(t):
            if t == 8: return string()
            if t == 9:
                et, n = u32(), u64()
                if et in (8, 9): return [val(et) for _ in range(n)]
                f.seek(size[et] * n, 1)
                return None
            return f.read(size[t])
        assert f.read(4) == b"GGUF"
        u32()
        n_tensors, n_kv = u64(), u64()
        align = 32
        for _ in range(n_kv):
            k = string(); v = val(u32())
            if k == "general.alignment": align = struct.unpack("<I", v)[0]
        ts = []
        for _ in range(n_tensors):
            name = string(); nd = u32(); [u64() for _ in range(nd)]; u32()
            ts.append((u64(), name))
        data = (f.tell() + align - 1) // align * align
    ts.sort()
    ends = [o for o, _ in ts[1:]] + [os.path.getsize(path) - data]
    return {name: end - o for (o, name), end in zip(ts, ends)}

# Bytes a decode step reads: every weight once (matrix-vector products;
# the tied token embedding is the LM head), except the per-layer token
# embedding table, of which one row per token is gathered.
tb = gguf_tensor_bytes(q4_path)
per_tok = sum(v for k, v in tb.items() if k != "per_layer_token_embd.weight")
bound = bw * 1e9 / per_tok

def med(eng, fmt, test, f):
    v = [f(r["res"]) for r in runs if r["engine"] == eng and r["fmt"] == fmt and test in (None, r["test"])]
    return statistics.median(v) if v else None

fmts = [f for f in ("q4_0", "q8_0") if any(r["fmt"] == f for r in runs)]
PL, PS, TGT = f"pp{pp_long}", f"pp{pp_short}", f"tg{tg}"
rows = []  # (label, unit, better, {fmt: (ours, llama)})
def metric(label, unit, better, test, f):
    rows.append((label, unit, better, {fmt: (med("gemma3n", fmt, test, f), med("llama.cpp", fmt, test, f)) for fmt in fmts}))
metric(f"prefill {PS}", "tok/s", "high", PS, lambda r: r["pp_tok_s"])
metric(f"prefill {PL}", "tok/s", "high", PL, lambda r: r["pp_tok_s"])
metric(f"decode {TGT}", "tok/s", "high", TGT, lambda r: r["tg_tok_s"])
metric(f"time to first token ({ttft_p}-token prompt, first after load)", "s", "low", None, lambda r: r["first_token_s"])
metric("load (model + context)", "s", "low", None, lambda r: r["load_s"])
metric(f"load + first token ({ttft_p}-token prompt)", "s", "low", None, lambda r: r["load_s"] + r["first_token_s"])
metric(f"peak RSS ({ctx} context, after {PL})", "GB", "low", PL, lambda r: r["peak_rss_mb"] * 1048576 / 1e9)

def fmtv(v, unit):
    if v is None: return "-"
    return f"{v:.2f}" if unit != "GB" else f"{v:.2f}"

lines = []
hdr = "| | " + " | ".join(f"gemma3n {f.upper()} | llama.cpp {f.upper()} | ratio" for f in fmts) + " |"
lines.append(hdr.replace("| ratio", "| gemma3n / llama.cpp"))
lines.append("|---" * (1 + 3 * len(fmts)) + "|")
for label, unit, better, d in rows:
    cells = []
    for fmt in fmts:
        o, l = d[fmt]
        ratio = f"{o / l:.2f}x" if o is not None and l else "-"
        cells += [f"{fmtv(o, unit)} {unit}", f"{fmtv(l, unit)} {unit}", ratio]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")

def get(label_start, fmt="q4_0"):
    for label, unit, better, d in rows:
        if label.startswith(label_start): return d.get(fmt, (None, None))
    return (None, None)
targets = []
def target(name, value, ok, shown):
    targets.append({"target": name, "value": value, "pass": ok, "shown": shown})
o, l = get("decode")
r = o / l if o and l else None
target(f"decode {TGT} Q4_0 >= 1.25x llama.cpp", r, r is not None and r >= 1.25, f"{r:.2f}x" if r else "-")
o, l = get(f"prefill {PL}")
r = o / l if o and l else None
target(f"prefill {PL} Q4_0 >= 2x llama.cpp", r, r is not None and r >= 2, f"{r:.2f}x" if r else "-")
o, _ = get("peak RSS")
target(f"peak RSS Q4_0 at {ctx} context <= 1.6 GB", o, o is not None and o <= 1.6, f"{o:.2f} GB" if o else "-")
o, _ = get("load + first token")
target("load to first token (warm page cache) <= 1 s", o, o is not None and o <= 1.0, f"{o:.2f} s" if o else "-")

date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
head = [
    f"date: {date}; gemma3n {rev}; llama.cpp v0.5.0 (node-llama-cpp 3.22.1 prebuilt CPU libraries, its defaults)",
    f"cpu: {cpu}, {os.cpu_count()} cores; {threads} threads; load average {load_before} before, {load_after} after; "
    f"other processes' CPU use just before each run: median {statistics.median(busy):.0f} %, max {max(busy)} %",
    f"model: synthetic E2B (random weights, released shapes), same GGUF for both engines; "
    f"medians of {reps} repetitions, one process each, engines alternating "
    f"(load and first token: medians over all processes)",
    f"memory bandwidth (membw, {threads} threads): {bw:.2f} GB/s; a Q4_0 decode step reads "
    f"{per_tok / 1e9:.3f} GB (every weight except the per-layer embedding table, from which a row is gathered) "
    f"-> decode bound {bound:.2f} tok/s",
]
print()
for h in head: print(h)
print()
for ln in lines: print(ln)
print()
for t in targets:
    print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['shown']}")
noisy = statistics.median(busy) >= 15
warn = ("WARNING: other processes kept the CPUs busy before most runs (median "
        f"{statistics.median(busy):.0f} %): these numbers, and the ratios above all, are not meaningful "
        "(llama.cpp's spinning threads lose far more to contention); rerun on a quiet machine.")
if noisy: print("\n" + warn)
md = "\n".join(head) + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(
    f"- {'PASS' if t['pass'] else 'FAIL'} {t['target']}: {t['shown']}" for t in targets) + "\n"
if noisy: md += "\n" + warn + "\n"
open(os.path.join(out, "results.md"), "w").write(md)
json.dump({"date": date, "revision": rev, "cpu": cpu, "threads": int(threads), "ctx": int(ctx),
           "load_avg_before": load_before, "load_avg_after": load_after, "bandwidth_gb_s": bw,
           "decode_bytes_per_token_q4_0": per_tok, "decode_bound_tok_s_q4_0": bound,
           "medians": {label: {fmt: {"gemma3n": d[fmt][0], "llama.cpp": d[fmt][1]} for fmt in fmts}
                       for label, unit, better, d in rows},
           "targets": targets, "noisy": noisy, "runs": runs}, open(os.path.join(out, "results.json"), "w"), indent=1)
EOF
echo
echo "results: $OUT/results.md, results.json, results.jsonl (log: $LOG)"

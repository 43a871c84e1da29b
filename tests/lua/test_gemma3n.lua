-- test_gemma3n.lua - the Lua module on the tiny golden models (id-only:
-- no tokenizer): logits and greedy ids against the upstream reference,
-- iterators, <close>, GC order, options and error conventions.
-- Run from the repository root (ctest does) with LUA_CPATH pointing at
-- the built gemma3n.so and LUA_PATH at tests/lua/?.lua.
local gemma3n = require "gemma3n"
local H = require "harness"
local npy = require "npy"

local GOLDEN = "tests/data/golden/"
local LOGIT_TOL = 1e-3 -- the golden README's tolerance for logits

local function ids_of(path)
  local a = npy.load(path)
  local ids = {}
  for i, v in ipairs(a.data) do ids[i] = math.tointeger(v) end
  return ids
end

-- Appends the ids of a for-loop over session:generate / session:chat.
local function collect(iter, state, ctrl, closing)
  local ids, text = {}, {}
  for piece, id in iter, state, ctrl, closing do
    text[#text + 1] = piece
    if id then ids[#ids + 1] = id end
  end
  return ids, table.concat(text)
end

H.section("module")
H.eq(type(gemma3n.version), "string", "version")
local t0 = gemma3n.now()
gemma3n.sleep(0.01)
H.check(gemma3n.now() - t0 >= 0.009, "now() is monotonic seconds and sleep() sleeps")
H.raises("seconds must be in", gemma3n.sleep, -1)
local opts = gemma3n.options()
for _, name in ipairs{"temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens", "stop",
                      "ignore_eos", "n_ctx", "n_threads"} do
  H.check(type(opts[name]) == "string", "options() documents " .. name)
end

H.section("load errors")
H.fails("io", nil, gemma3n.load, "tests/data/golden/no_such_model")
H.raises("string expected, got table", gemma3n.load, {})
H.raises("unknown option 'threads' (valid: n_threads, load_tokenizer, weights)", gemma3n.load, GOLDEN .. "text_tiny_a", {threads = 2})
H.raises("option 'temperature' cannot be set here", gemma3n.load, GOLDEN .. "text_tiny_a", {temperature = 0})
H.raises("n_threads must be a number", gemma3n.load, GOLDEN .. "text_tiny_a", {n_threads = "4"})
H.raises("n_threads must be in", gemma3n.load, GOLDEN .. "text_tiny_a", {n_threads = -1})
H.raises("table expected, got number", gemma3n.load, GOLDEN .. "text_tiny_a", 5)

-- ---------------------------------------------------------------------------
-- Golden sets: logits within 1e-3 and greedy ids exact.
for _, set in ipairs{"text_tiny_a", "text_tiny_b", "text_tiny_a_f32", "text_tiny_a_sharded", "text_tiny_b_f16"} do
  H.section("golden " .. set)
  local dir = GOLDEN .. set .. "/"
  local model = assert(gemma3n.load(dir, {n_threads = 1}))
  local V = model:info().vocab_size
  local input = ids_of(dir .. "input_ids.npy")
  local want_ids = ids_of(dir .. "generated_ids.npy")
  local prefill = npy.load(dir .. "logits_prefill.npy")
  local steps = npy.load(dir .. "decode_step_logits.npy")
  local T = #input
  H.eq(prefill.shape[1], T, "logits_prefill rows")

  -- Last position, and every position with logits_all.
  local s = assert(model:session{n_ctx = 64, temperature = 0, logits_all = true})
  H.eq(s:eval(input), true, "eval")
  local logits = assert(s:logits())
  H.eq(#logits, V, "#logits")
  local d = H.max_diff(logits, npy.row(prefill, T), V)
  H.check(d <= LOGIT_TOL, string.format("last-position logits max|diff| %.3g", d))
  local worst = 0
  for r = 1, T do worst = math.max(worst, H.max_diff(assert(s:logits(r)), npy.row(prefill, r), V)) end
  H.check(worst <= LOGIT_TOL, string.format("every prefill row max|diff| %.3g", worst))
  print(string.format("  prefill logits max|diff| %.2e", worst))
  H.raises("row must be in [1, " .. T .. "]", s.logits, s, T + 1)

  -- Greedy through the for-iterator (temperature = 0, ignore_eos).
  local g = assert(model:session{n_ctx = 64, temperature = 0})
  local got = collect(g:generate(input, {max_tokens = #want_ids, ignore_eos = true}))
  H.same_ids(got, want_ids, set .. " generate() greedy ids")
  H.eq(g:n_past(), T + #want_ids, "n_past after generate")
  local ctx = g:tokens()
  H.same_ids({table.unpack(ctx, T + 1)}, want_ids, "tokens() holds the generated ids")

  -- Token by token with step(1): every decode step's logits and id.
  local st = assert(model:session{n_ctx = 64, temperature = 0})
  assert(st:eval(input))
  local worst_step, stepped = 0, {}
  for i = 1, #want_ids do
    worst_step = math.max(worst_step, H.max_diff(st:logits(), npy.row(steps, i), V))
    local ids, text, finish = st:step(1, {ignore_eos = true})
    H.eq(text, "", "step text on an id-only model")
    H.eq(finish, "length", "step finish")
    stepped[i] = ids[1]
  end
  H.check(worst_step <= LOGIT_TOL, string.format("decode-step logits max|diff| %.3g", worst_step))
  H.same_ids(stepped, want_ids, "step(1) x n greedy ids")

  -- step(n) in one call.
  local sn = assert(model:session{n_ctx = 64, temperature = 0, ignore_eos = true})
  assert(sn:eval(input))
  local ids, text, finish = sn:step(#want_ids)
  H.same_ids(ids, want_ids, "step(n) greedy ids")
  H.eq(text, "", "step(n) text")
  H.eq(finish, "length", "step(n) finish")
  s:close(); g:close(); st:close(); sn:close()
  model:close()
end

-- ---------------------------------------------------------------------------
local dir = GOLDEN .. "text_tiny_a/"
local model = assert(gemma3n.load(dir, {n_threads = 1}))
local input = ids_of(dir .. "input_ids.npy")
local want_ids = ids_of(dir .. "generated_ids.npy")

H.section("logits userdata")
do
  local s <close> = model:session{n_ctx = 32}
  H.fails("state", "no logits", s.logits, s)
  assert(s:eval(input))
  local l = s:logits()
  H.eq(l[0], nil, "logits[0]")
  H.eq(l[#l + 1], nil, "logits[#l + 1]")
  H.eq(l.nonsense, nil, "unknown key")
  local id, value = l:argmax()
  H.eq(id, want_ids[1], "argmax is the greedy token id (0-based)")
  H.eq(value, l[id + 1], "argmax value is logits[id + 1]")
  local t = l:totable()
  H.eq(#t, #l, "totable length")
  H.eq(t[17], l[17], "totable values")
  local n = 0
  for _ in ipairs(l) do n = n + 1 end
  H.eq(n, #l, "ipairs walks 1..#l")
  H.check(tostring(l):find("gemma3n.Logits", 1, true), "Logits __tostring")
  assert(s:eval({7}))
  H.eq(id, want_ids[1], "a Logits is a copy: later evals do not change it")
  H.eq(l:argmax(), id, "copy unchanged")
  H.fails("state", "logits_all", s.logits, s, 1)
end

H.section("for with break, closing value, stale iterators")
do
  local s <close> = model:session{n_ctx = 64, temperature = 0}
  local f, state, ctrl, closing = s:generate(input, {max_tokens = 8, ignore_eos = true})
  H.eq(type(f), "function", "iterator")
  H.eq(state, nil, "state")
  H.eq(ctrl, nil, "control")
  H.check(getmetatable(closing) and getmetatable(closing).__close, "4th value is a to-be-closed Generation")
  closing = nil
  f = nil

  local n = 0
  for _, id in s:generate(nil, {max_tokens = 8, ignore_eos = true}) do
    n = n + 1
    if n == 3 then break end
  end
  H.eq(n, 3, "break after 3 pieces")
  -- The first generate evaluated the prompt; the loop added 3 tokens.
  H.eq(s:n_past(), #input + 3, "break leaves the produced tokens in the context")
  H.eq(s:busy(), false, "not busy after break")
  local ids = s:step(2, {ignore_eos = true})
  H.eq(#ids, 2, "session usable after break")

  -- The closing value released the iterator: calling it again yields nothing.
  local it, _, _, gen = s:generate(nil, {max_tokens = 8, ignore_eos = true})
  local piece, id = it()
  H.eq(piece, "", "manual call: text")
  H.check(math.type(id) == "integer", "manual call: id")
  getmetatable(gen).__close(gen)
  H.eq(it(), nil, "a closed generation yields nothing")

  -- Another call on the session makes an open iterator stale.
  local it2 = s:generate(nil, {max_tokens = 8, ignore_eos = true})
  it2()
  s:eval({5})
  H.raises("generation interrupted", it2)

  -- The loop ends by itself at max_tokens.
  s:reset()
  local count = 0
  for _ in s:generate(input, {max_tokens = 5, ignore_eos = true}) do count = count + 1 end
  H.eq(count, 5, "max_tokens pieces")

  -- An error inside the loop body closes the generation too.
  local ok = pcall(function()
    for _ in s:generate(nil, {max_tokens = 5, ignore_eos = true}) do error("boom") end
  end)
  H.eq(ok, false, "error in the loop body propagates")
  H.check(s:step(1, {ignore_eos = true}), "session usable after an error in the loop")
end

H.section("<close> and use after close")
do
  local mref, sref
  do
    local m <close> = assert(gemma3n.load(dir))
    local s <close> = assert(m:session{n_ctx = 16})
    mref, sref = m, s
    H.eq(s:model(), m, "session:model()")
  end
  H.raises("attempt to use a closed model", mref.session, mref)
  H.raises("attempt to use a closed model", mref.tokenize, mref, "x")
  H.raises("attempt to use a closed session", sref.eval, sref, {1})
  H.raises("attempt to use a closed session", sref.poll, sref)
  H.raises("attempt to use a closed session", sref.generate, sref, {1})
  H.check(tostring(mref):find("closed", 1, true), "closed model __tostring")
  H.check(tostring(sref):find("closed", 1, true), "closed session __tostring")
  mref:close() -- idempotent
  sref:close()
  getmetatable(sref).__gc(sref)
  getmetatable(mref).__gc(mref)
  H.check(true, "close, __close and __gc are idempotent")
end

H.section("GC in either order")
do
  -- The model closed first: the session keeps the weights alive (core refcount).
  local m = assert(gemma3n.load(dir))
  local s = assert(m:session{n_ctx = 64, temperature = 0})
  m:close()
  m = nil
  collectgarbage("collect")
  H.same_ids(collect(s:generate(input, {max_tokens = 8, ignore_eos = true})), want_ids,
             "a session outlives its closed model")
  s = nil
  collectgarbage("collect")

  -- The session closed first, then the model keeps working.
  local m2 = assert(gemma3n.load(dir))
  local s2 = assert(m2:session{n_ctx = 16})
  s2:close()
  local s3 = assert(m2:session{n_ctx = 16})
  H.check(s3:eval({1, 2}), "model usable after one of its sessions closed")

  -- Both unreachable at once: __gc runs in whatever order the collector picks.
  for _ = 1, 20 do
    local mm = assert(gemma3n.load(dir))
    for _ = 1, 3 do assert(mm:session{n_ctx = 8}):eval({2}) end
  end
  s3, m2, s2 = nil, nil, nil
  collectgarbage("collect")
  collectgarbage("collect")
  H.check(true, "GC of models and sessions in any order")
end

H.section("kv_type option")
do
  -- The f16 K/V cache: logits close to the f32 cache's (test_kv_f16.c justifies
  -- 2e-2 from the 2^-11 rounding of the RMSNormed K/V) but not equal, golden greedy ids.
  local a <close> = assert(model:session{n_ctx = 64, kv_type = "f32"})
  local b <close> = assert(model:session{n_ctx = 64, kv_type = "f16", temperature = 0})
  assert(a:eval(input))
  assert(b:eval(input))
  local V = model:info().vocab_size
  local d = H.max_diff(a:logits(), b:logits(), V)
  H.check(d > 0 and d <= 2e-2, string.format("f16 KV logits max|diff| %.3g in (0, 2e-2]", d))
  b:reset()
  H.same_ids(collect(b:generate(input, {max_tokens = #want_ids, ignore_eos = true})), want_ids,
             "f16 KV greedy ids")
  H.raises("kv_type: 'bf16' is not a K/V cache type", model.session, model, {kv_type = "bf16"})
  H.raises("kv_type must be a string", model.session, model, {kv_type = 16})
end

H.section("bad input")
do
  local s <close> = assert(model:session{n_ctx = 16, temperature = 0})
  H.fails("argument", "outside the vocabulary", s.eval, s, {2, 512})
  H.fails("argument", "outside the vocabulary", s.eval, s, {-1})
  H.eq(s:n_past(), 0, "a failed eval leaves the session unchanged")
  H.fails("argument", "empty prompt", s.eval, s, {})
  assert(s:eval({2, 3, 4, 5, 6, 7}))
  H.fails("context_overflow", "context overflow", s.eval, s, input) -- 6 + 12 > n_ctx 16
  H.raises("context overflow", s.generate, s, input)
  H.raises("ids[2] must be an integer", s.eval, s, {1, "2"})
  H.raises("ids[1] must be an integer", s.eval, s, {1.5})
  H.raises("is not a token id", s.eval, s, {2 ^ 40 // 1})
  H.raises("table expected, got string", s.eval, s, "hello")
  H.raises("string, table of token ids or nil expected", s.generate, s, 42)
  H.raises("n must be a positive number", s.step, s, 0)
  H.raises("number expected", s.step, s, "x")

  -- Text on a model without tokenizer.
  H.fails("no_tokenizer", "model has no tokenizer", model.tokenize, model, "hello")
  H.fails("no_tokenizer", "model has no tokenizer", model.detokenize, model, {1, 2})
  H.raises("model has no tokenizer", s.generate, s, "hello")
  H.raises("model has no tokenizer", s.chat, s, {{role = "user", content = "hi"}})

  -- Nothing to continue from.
  local e <close> = assert(model:session{n_ctx = 16})
  H.fails("state", "evaluate a prompt", e.step, e, 4)
  H.raises("evaluate a prompt", e.generate, e)

  -- Session creation.
  H.fails("argument", "n_ctx", model.session, model, {n_ctx = 1000000})
  H.raises("option 'n_threads' cannot be set here", model.session, model, {n_threads = 2})
  H.raises("unknown option 'temp'", model.session, model, {temp = 0.5})
  H.raises("top_p must be in [0, 1]", model.session, model, {top_p = 2})
  H.raises("top_k must be an integer", model.session, model, {top_k = 2.5})
  H.raises("ignore_eos must be a boolean", model.session, model, {ignore_eos = 1})
  H.raises("stop must be a string or a list of strings", model.session, model, {stop = 5})
  H.raises("stop[2] must be a string", model.session, model, {stop = {"a", 5}})
  H.raises("at most 8 stop strings", model.session, model, {stop = {"1", "2", "3", "4", "5", "6", "7", "8", "9"}})
  H.raises("option names must be strings", model.session, model, {1, 2})
  H.raises("logit_bias keys must be token ids", model.session, model, {logit_bias = {a = 1}})
  H.fails("argument", nil, model.session, model, {logit_bias = {[9999] = 1}})

  -- Per-call options: only sampling and generation ones.
  H.raises("option 'n_ctx' cannot be set here", s.generate, s, {2}, {n_ctx = 8})
  H.raises("unknown option 'max_token'", s.step, s, 1, {max_token = 2})
  H.raises("table expected, got string", s.generate, s, {2}, "opts")

  -- Flags of tokenize / detokenize / format_chat.
  H.raises("unknown option 'add_bos' (valid: bos, special)", model.tokenize, model, "x", {add_bos = true})
  H.raises("bos must be a boolean", model.tokenize, model, "x", {bos = 1})
  H.raises("unknown option 'skip' (valid: skip_special)", model.detokenize, model, {1}, {skip = true})
end

H.section("sampling options: session defaults, per-call overrides, seeds")
do
  local function sample(opts_session, opts_call)
    local s <close> = assert(model:session(opts_session))
    assert(s:eval(input))
    return (assert(s:step(12, opts_call)))
  end
  local hot = {n_ctx = 64, temperature = 1.5, top_k = 0, top_p = 1, min_p = 0, seed = 7, ignore_eos = true}
  local a = sample(hot)
  H.same_ids(sample(hot), a, "same seed, same ids")
  local differs = false
  for seed = 1, 4 do
    hot.seed = 100 + seed
    local b = sample(hot)
    for i = 1, #a do differs = differs or a[i] ~= b[i] end
  end
  H.check(differs, "other seeds give other ids")
  hot.seed = 7
  -- A greedy session with the sampling options given per call.
  local s <close> = assert(model:session{n_ctx = 64, temperature = 0, ignore_eos = true})
  assert(s:eval(input))
  local over = assert(s:step(12, {temperature = 1.5, top_k = 0, top_p = 1, min_p = 0, seed = 7}))
  H.same_ids(over, a, "per-call options override the session's")
  s:reset()
  assert(s:eval(input))
  H.same_ids((s:step(8)), want_ids, "the next call without options is greedy again")
  -- Exact 64-bit seeds.
  local big = {n_ctx = 64, temperature = 1.5, top_k = 0, top_p = 1, min_p = 0, ignore_eos = true,
               seed = math.maxinteger}
  H.same_ids(sample(big), sample(big), "seed = math.maxinteger is reproducible")
  -- max_tokens from the session, overridable per call; a logit bias bans a token.
  local d <close> = assert(model:session{n_ctx = 64, temperature = 0, max_tokens = 3, ignore_eos = true})
  local got = collect(d:generate(input))
  H.eq(#got, 3, "max_tokens from the session's options")
  d:reset()
  got = collect(d:generate(input, {max_tokens = 5}))
  H.eq(#got, 5, "max_tokens overridden per call")
  d:reset()
  got = collect(d:generate(input, {logit_bias = {[want_ids[1]] = -math.huge}}))
  H.check(got[1] ~= want_ids[1], "logit_bias = -inf bans the greedy token")
end

H.section("reset, tokens, tostring")
do
  local s <close> = assert(model:session{n_ctx = 32, temperature = 0})
  assert(s:eval(input))
  H.eq(s:n_ctx(), 32, "n_ctx")
  H.same_ids(s:tokens(), input, "tokens() after eval")
  H.check(tostring(s):find("12/32", 1, true), "session __tostring shows n_past/n_ctx")
  s:reset()
  H.eq(s:n_past(), 0, "reset empties the context")
  H.fails("state", nil, s.logits, s)
  H.same_ids(collect(s:generate(input, {max_tokens = 8, ignore_eos = true})), want_ids, "greedy again after reset")
  H.check(tostring(model):find("gemma3n.Model", 1, true), "model __tostring")
  local info = model:info()
  H.eq(info.vocab_size, 512, "info.vocab_size")
  H.eq(info.has_tokenizer, false, "info.has_tokenizer")
end

-- ---------------------------------------------------------------------------
-- MatFormer: select a submodel at run time (matformer_tiny golden slices).
do
  local mdir = "tests/data/golden/matformer_tiny"
  local mf = assert(gemma3n.load(mdir))
  local function last_row_diff(results)
    local ids = ids_of(mdir .. "/" .. results .. "/input_ids.npy")
    local ref = npy.load(mdir .. "/" .. results .. "/logits_prefill.npy")
    local s <close> = assert(mf:session{n_ctx = 64})
    assert(s:eval(ids))
    local l, V, worst = s:logits(), ref.shape[2], 0
    local base = (#ids - 1) * V
    for v = 1, V do worst = math.max(worst, math.abs(l[v] - ref.data[base + v])) end
    return worst
  end
  H.check(last_row_diff("full") <= 1e-3, "matformer full model")
  assert(mf:select_submodel(mdir .. "/slice_B.json"))
  H.check(last_row_diff("slice_B") <= 1e-3, "select_submodel(slice_B.json)")
  assert(mf:select_submodel{layers_to_skip = {6, 7}, ffn_hidden_dims = {32, 32, 32, 32, 32, 32, 0, 0, 32, 32}})
  H.check(last_row_diff("slice_A") <= 1e-3, "select_submodel{table spec}")
  assert(mf:select_submodel("full"))
  H.check(last_row_diff("full") <= 1e-3, "back to the full model without reloading")
  local ok, msg, code = mf:select_submodel{layers_to_skip = {4}}
  H.check(ok == nil and code == "argument" and msg:find("cannot be skipped", 1, true), "KV producer rejected: " .. tostring(msg))
  ok, msg, code = mf:select_submodel("E9B")
  H.check(ok == nil and msg:find("unknown submodel", 1, true), "unknown name rejected")
  local list = mf:submodels()
  H.eq(#list, 16, "submodels() lists the official table")
  H.eq(list[2].alias, "E2B", "row 2 is E2B")
  H.eq(list[1].valid, false, "E4B table rows do not fit the 10-layer tiny model")
  mf:close()
end

-- Left open on purpose: lua_close (os.exit(..., true)) finalizes them.
_G.leftover_model = assert(gemma3n.load(dir))
_G.leftover_session = assert(_G.leftover_model:session{n_ctx = 16})
H.done()

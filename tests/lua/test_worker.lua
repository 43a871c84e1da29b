-- test_worker.lua - background generation (start / poll / wait / cancel)
-- on an id-only golden model: results equal the synchronous path, the
-- session is busy while the worker owns it, errors come back through
-- poll, a frame loop keeps its frame time, close/GC cancel and join.
local gemma3n = require "gemma3n"
local H = require "harness"
local npy = require "npy"

local dir = "tests/data/golden/text_tiny_a/"
local function ids_of(path)
  local ids = {}
  for i, v in ipairs(npy.load(path).data) do ids[i] = math.tointeger(v) end
  return ids
end
local input = ids_of(dir .. "input_ids.npy")
local want_ids = ids_of(dir .. "generated_ids.npy")
local model = assert(gemma3n.load(dir, {n_threads = 1}))

local function tail(t, from) return {table.unpack(t, from)} end

-- Polls every `dt` seconds until done; returns the concatenated text and the final results.
local function poll_until_done(s, dt)
  local parts = {}
  while true do
    local text, done, reason = s:poll()
    if text == nil then return nil, done, reason end
    parts[#parts + 1] = text
    if done then return table.concat(parts), done, reason end
    gemma3n.sleep(dt or 0.001)
  end
end

H.section("start + poll: greedy ids equal the golden")
do
  local s <close> = assert(model:session{n_ctx = 64, temperature = 0})
  H.eq(s:start(input, {max_tokens = #want_ids, ignore_eos = true}), true, "start returns true at once")
  local text, done, reason = poll_until_done(s)
  H.eq(text, "", "no text on an id-only model")
  H.eq(done, true, "done")
  H.eq(reason, "length", "finish reason")
  H.eq(s:busy(), false, "idle after the final poll")
  H.same_ids(tail(s:tokens(), #input + 1), want_ids, "background greedy ids")
end

H.section("wait, and polling without a job")
do
  local s <close> = assert(model:session{n_ctx = 64, temperature = 0})
  H.fails("state", "no background generation", s.poll, s)
  H.fails("state", "no background generation", s.wait, s)
  H.eq(s:cancel(), false, "cancel without a job")
  assert(s:start(input, {max_tokens = #want_ids, ignore_eos = true}))
  local text, done, reason = s:wait()
  H.eq(text, "", "wait text")
  H.eq(done, true, "wait done")
  H.eq(reason, "length", "wait reason")
  H.same_ids(tail(s:tokens(), #input + 1), want_ids, "ids after wait")
  -- start without a prompt continues from the context.
  assert(s:start(nil, {max_tokens = 3, ignore_eos = true}))
  s:wait()
  H.eq(s:n_past(), #input + #want_ids + 3, "start(nil) continues the context")
end

H.section("busy while the worker owns the session")
do
  local s <close> = assert(model:session{n_ctx = 512, temperature = 0})
  assert(s:start(input, {max_tokens = 400, ignore_eos = true}))
  H.eq(s:busy(), true, "busy()")
  H.check(tostring(s):find("busy", 1, true), "__tostring says busy")
  for name, args in pairs{eval = {{1}}, logits = {}, step = {1}, generate = {{1}}, reset = {}, n_past = {},
                          tokens = {}, start = {{1}}, chat = {{{role = "user", content = "x"}}}, n_ctx = {}} do
    H.raises("session is busy", s[name], s, table.unpack(args))
  end
  H.eq(s:model(), model, "model() works while busy")
  local other <close> = assert(model:session{n_ctx = 64, temperature = 0})
  H.same_ids(select(1, (function() assert(other:eval(input)); return other:step(8, {ignore_eos = true}) end)()),
             want_ids, "another session of the same model runs meanwhile")
  H.eq(s:cancel(), true, "cancel while running")
  local _, done, reason = poll_until_done(s)
  H.eq(done, true, "done after cancel")
  H.eq(reason, "cancelled", "reason after cancel")
  H.check(s:n_past() < #input + 400, "cancel stopped the generation early (n_past " .. s:n_past() .. ")")
  -- Under load the worker may not have evaluated anything before the cancel:
  -- then the context is empty and there is nothing to continue from.
  H.check(s:n_past() == 0 or s:step(1, {ignore_eos = true}), "the session works after a cancelled job")
end

H.section("cancel during prompt evaluation")
do
  local s <close> = assert(model:session{n_ctx = 4096, temperature = 0})
  local long = {}
  for i = 1, 3000 do long[i] = 2 + i % 500 end
  assert(s:start(long, {max_tokens = 4}))
  s:cancel()
  local _, done, reason = s:wait()
  H.eq(done, true, "done")
  H.eq(reason, "cancelled", "cancelled while evaluating the prompt")
  H.check(s:n_past() < #long, "prompt evaluation stopped between batches (n_past " .. s:n_past() .. ")")
end

H.section("runtime errors come back through poll")
do
  local s <close> = assert(model:session{n_ctx = 16, temperature = 0})
  local cases = {
    {{2, 600}, "argument", "outside the vocabulary"},
    {{}, "argument", "empty prompt"},
    {{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, "context_overflow", "context overflow"},
    {"hello", "no_tokenizer", "model has no tokenizer"},
    {nil, "state", "evaluate a prompt"},
  }
  for _, c in ipairs(cases) do
    H.eq(s:start(c[1], {max_tokens = 2}), true, "start accepts the job (" .. c[2] .. ")")
    H.fails(c[2], c[3], poll_until_done, s)
    H.eq(s:busy(), false, "idle after the error")
  end
  H.eq(s:start_chat({{role = "user", content = "hi"}}), true, "start_chat on an id-only model")
  H.fails("no_tokenizer", nil, s.wait, s)
  -- Bad arguments raise at once and start nothing.
  H.raises("string, table of token ids or nil expected", s.start, s, 42)
  H.raises("option 'n_ctx' cannot be set here", s.start, s, {2}, {n_ctx = 4})
  H.raises("messages[1] must be a table", s.start_chat, s, {"hi"})
  H.eq(s:busy(), false, "nothing started by a bad call")
end

H.section("background ids equal synchronous ids for the same seed")
do
  local opts = {max_tokens = 24, ignore_eos = true, temperature = 1.3, top_k = 0, top_p = 1, min_p = 0, seed = 99}
  local a <close> = assert(model:session{n_ctx = 64})
  local sync = {}
  for _, id in a:generate(input, opts) do sync[#sync + 1] = id end
  local b <close> = assert(model:session{n_ctx = 64})
  assert(b:start(input, opts))
  poll_until_done(b)
  H.same_ids(tail(b:tokens(), #input + 1), sync, "start/poll == generate (seed 99)")
  local c <close> = assert(model:session{n_ctx = 64, temperature = 1.3, top_k = 0, top_p = 1, min_p = 0, seed = 99})
  assert(c:eval(input))
  local ids = c:step(24, {ignore_eos = true})
  H.same_ids(ids, sync, "step == generate when the options are the session's")
end

H.section("a 60 Hz frame loop keeps its frame time")
do
  -- Generate until the context is full, and cancel after half a second of frames.
  local s <close> = assert(model:session{n_ctx = 4096, temperature = 0})
  local FRAME, CANCEL_AT = 1 / 60, 30
  local max_work, frames, busy_frames, reason = 0, 0, 0, nil
  local t_start = gemma3n.now()
  assert(s:start(input, {max_tokens = 0, ignore_eos = true}))
  while true do
    local t0 = gemma3n.now()
    local text, done, why = s:poll()
    assert(text, done)
    local acc = 0
    for i = 1, 2000 do acc = acc + i % 7 end -- the game's own work
    local work = gemma3n.now() - t0
    max_work = math.max(max_work, work)
    frames = frames + 1
    if done then reason = why break end
    busy_frames = busy_frames + 1
    if frames == CANCEL_AT then s:cancel() end
    gemma3n.sleep(math.max(0, FRAME - work))
  end
  local elapsed = gemma3n.now() - t_start
  local produced = s:n_past() - #input
  print(string.format("  %d frames (%d while generating, %d tokens) in %.2f s, longest frame work %.3f ms",
                      frames, busy_frames, produced, elapsed, max_work * 1000))
  H.check(reason == "cancelled" or reason == "length", "ended by cancel (or a full context): " .. tostring(reason))
  H.check(busy_frames >= CANCEL_AT or reason == "length", "the loop kept running while the model generated")
  H.check(produced > 0, "tokens were produced in the background")
  H.check(max_work < 0.050, string.format("longest frame %.3f ms < 50 ms", max_work * 1000))
end

H.section("close and GC of a busy session cancel and join")
do
  local s = assert(model:session{n_ctx = 1024, temperature = 0})
  assert(s:start(input, {max_tokens = 900, ignore_eos = true}))
  local t0 = gemma3n.now()
  s:close()
  local dt = gemma3n.now() - t0
  print(string.format("  close of a busy session took %.1f ms", dt * 1000))
  H.check(dt < 2, "close cancels instead of waiting for 900 tokens")
  H.raises("attempt to use a closed session", s.poll, s)
  s:close()

  -- Unreachable while running: __gc cancels and joins.
  do
    local g = assert(model:session{n_ctx = 1024, temperature = 0})
    assert(g:start(input, {max_tokens = 900, ignore_eos = true}))
  end
  collectgarbage("collect")
  collectgarbage("collect")
  H.check(true, "__gc of a busy session")

  -- <close> on a busy session.
  do
    local c <close> = assert(model:session{n_ctx = 1024, temperature = 0})
    assert(c:start(input, {max_tokens = 900, ignore_eos = true}))
  end
  H.check(true, "<close> of a busy session")

  -- The model closed while a worker runs: the session keeps it alive.
  local m2 = assert(gemma3n.load(dir, {n_threads = 1}))
  local s2 <close> = assert(m2:session{n_ctx = 64, temperature = 0})
  assert(s2:start(input, {max_tokens = #want_ids, ignore_eos = true}))
  m2:close()
  m2 = nil
  collectgarbage("collect")
  local _, done = s2:wait()
  H.eq(done, true, "a job finishes after its model was closed")
  H.same_ids(tail(s2:tokens(), #input + 1), want_ids, "and produces the right ids")
end

-- Left running on purpose: lua_close (os.exit(..., true)) must cancel and join it.
_G.running = assert(model:session{n_ctx = 1024, temperature = 0})
assert(_G.running:start(input, {max_tokens = 900, ignore_eos = true}))
H.done()

-- test_text.lua - text-level calls on tests/data/tiny_chat (text_tiny_a
-- weights + a 512-token tokenizer with Gemma's structure: <bos>=2, eos=1,
-- <start_of_turn>=105, <end_of_turn>=106): tokenize/detokenize, the chat
-- format, streamed text, stop strings, special and stop tokens, chat
-- prefix reuse, and background text equal to synchronous text.
local gemma3n = require "gemma3n"
local H = require "harness"

local model = assert(gemma3n.load("tests/data/tiny_chat", {n_threads = 1}))
local GREEDY = {n_ctx = 512, temperature = 0}

-- Runs a for-loop over an iterator; returns the text and the ids.
local function collect(...)
  local parts, ids = {}, {}
  for piece, id in ... do
    parts[#parts + 1] = piece
    ids[#ids + 1] = id
  end
  return table.concat(parts), ids
end

local function poll_all(s)
  local parts = {}
  repeat
    local text, done, reason = s:poll()
    if text == nil then return nil, done, reason end
    parts[#parts + 1] = text
    if not done then gemma3n.sleep(0.001) end
  until done
  return table.concat(parts)
end

H.section("tokenize / detokenize")
do
  local ids = assert(model:tokenize("Hello world"))
  H.eq(ids[1], 2, "<bos> first by default")
  H.eq(model:detokenize(ids), "<bos>Hello world", "detokenize writes special tokens")
  H.eq(model:detokenize(ids, {skip_special = true}), "Hello world", "skip_special")
  local nobos = model:tokenize("Hello world", {bos = false})
  H.eq(#nobos, #ids - 1, "bos = false")
  H.eq(model:tokenize("<start_of_turn>", {bos = false, special = true})[1], 105, "special = true parses <start_of_turn>")
  H.check(model:tokenize("<start_of_turn>", {bos = false})[1] ~= 105, "special tokens are plain text by default")
  H.fails("argument", "invalid UTF-8", model.tokenize, model, "ab\xff")
  H.fails("argument", nil, model.detokenize, model, {2, 512})
  H.eq(model:detokenize({}), "", "detokenize {}")
  local turns = {}
  for i = 1, 100 do turns[i] = 105 end
  H.eq(model:detokenize(turns), string.rep("<start_of_turn>", 100), "detokenize output longer than 8 bytes a token")
  H.eq(#model:tokenize("", {bos = false}), 0, "tokenize ''")
  local long = string.rep("Hello world, once upon a time. ", 200)
  H.eq(model:detokenize(model:tokenize(long, {bos = false})), long, "long round trip")
  H.eq(model:info().has_tokenizer, true, "info.has_tokenizer")
end

H.section("format_chat")
do
  local msgs = {{role = "user", content = "Hello"}}
  H.eq(gemma3n.format_chat(msgs), "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
       "one user turn")
  H.eq(gemma3n.format_chat(msgs, {generation_prompt = false, bos = false}),
       "<start_of_turn>user\nHello<end_of_turn>\n", "no bos, no generation prompt")
  H.eq(gemma3n.format_chat{{role = "system", content = "Be brief."}, {role = "user", content = "Hi"},
                           {role = "assistant", content = "Hello!"}, {role = "user", content = "Bye"}},
       "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n" ..
       "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n", "system merged, assistant -> model")
  H.fails("argument", nil, gemma3n.format_chat, {{role = "wizard", content = "x"}})
  H.fails("argument", nil, gemma3n.format_chat, {})
  H.raises("messages[1].content must be a string", gemma3n.format_chat, {{role = "user"}})
  H.raises("messages[2] must be a table", gemma3n.format_chat, {{role = "user", content = "x"}, "y"})
  H.raises("unknown option 'add_generation_prompt'", gemma3n.format_chat, msgs, {add_generation_prompt = true})
end

H.section("streamed text")
local greedy_text, greedy_ids
do
  local s <close> = assert(model:session(GREEDY))
  greedy_text, greedy_ids = collect(s:generate("Once upon a time", {max_tokens = 40, ignore_eos = true}))
  H.eq(#greedy_ids, 40, "40 pieces")
  H.check(#greedy_text > 0, "some text")
  H.eq(greedy_text, model:detokenize(greedy_ids, {skip_special = true}), "pieces == detokenize(ids)")
  local prompt = model:tokenize("Once upon a time")
  H.same_ids({table.unpack(s:tokens(), 1, #prompt)}, prompt,
             "a string prompt is tokenized with <bos> on an empty session")

  local t <close> = assert(model:session(GREEDY))
  assert(t:eval(prompt))
  local ids, text, finish = t:step(40, {ignore_eos = true})
  H.eq(text, greedy_text, "step(n) text == generate text")
  H.same_ids(ids, greedy_ids, "step(n) ids")
  H.eq(finish, "length", "step finish")

  -- "<bos>" written in the text is not doubled.
  local u <close> = assert(model:session(GREEDY))
  local text2 = collect(u:generate("<bos>Once upon a time", {max_tokens = 40, ignore_eos = true}))
  H.eq(text2, greedy_text, "a prompt starting with <bos> gets no second one")

  -- A second string prompt on a non-empty session gets no <bos>.
  local n = u:n_past()
  collect(u:generate("More", {max_tokens = 1, ignore_eos = true}))
  H.eq(u:n_past(), n + #model:tokenize("More", {bos = false}) + 1, "no <bos> when the context is not empty")
  H.raises("empty prompt", u.generate, u, "")
end

H.section("stop strings")
do
  local stop = "<unused161>"
  local at = greedy_text:find(stop, 1, true)
  H.check(at and at > 1, "the stop string occurs in the greedy text")
  local s <close> = assert(model:session(GREEDY))
  local text = collect(s:generate("Once upon a time", {max_tokens = 40, ignore_eos = true, stop = stop}))
  H.eq(text, greedy_text:sub(1, at - 1), "text ends before the stop string")
  local t <close> = assert(model:session(GREEDY))
  assert(t:eval(model:tokenize("Once upon a time")))
  local _, text2, finish = t:step(40, {ignore_eos = true, stop = {"never there", stop}})
  H.eq(text2, greedy_text:sub(1, at - 1), "step with a list of stop strings")
  H.eq(finish, "stop", "finish = stop")
  -- A session-level stop string applies to every call.
  local u <close> = assert(model:session{n_ctx = 512, temperature = 0, stop = stop, ignore_eos = true})
  H.eq(collect(u:generate("Once upon a time", {max_tokens = 40})), greedy_text:sub(1, at - 1),
       "stop from the session's options")
end

H.section("special and stop tokens")
do
  local s <close> = assert(model:session(GREEDY))
  local text, ids = collect(s:generate("Hello", {max_tokens = 4, ignore_eos = true, logit_bias = {[105] = 1000}}))
  H.eq(text, "", "special tokens produce no text")
  H.same_ids(ids, {105, 105, 105, 105}, "but they are produced")
  for _, stop_id in ipairs{1, 106} do
    local t <close> = assert(model:session(GREEDY))
    assert(t:eval(model:tokenize("Hello")))
    local n = t:n_past()
    local ids2, text2, finish = t:step(5, {logit_bias = {[stop_id] = 1000}})
    H.eq(#ids2, 0, "stop token " .. stop_id .. " is not returned")
    H.eq(text2, "", "no text")
    H.eq(finish, "stop", "finish = stop")
    H.eq(t:n_past(), n, "a stop token is not added to the context")
    local _, ids3 = collect(t:generate(nil, {max_tokens = 5, logit_bias = {[stop_id] = 1000}}))
    H.eq(#ids3, 0, "the iterator ends at once on a stop token")
  end
end

H.section("chat: prefix reuse gives the same result as a fresh session")
do
  local msgs = {{role = "system", content = "You are terse."}, {role = "user", content = "Hi there"}}
  local s <close> = assert(model:session(GREEDY))
  local reply = collect(s:chat(msgs, {max_tokens = 12}))
  H.check(#reply > 0, "a reply")
  local formatted = model:tokenize(gemma3n.format_chat(msgs), {bos = false, special = true})
  H.same_ids({table.unpack(s:tokens(), 1, #formatted)}, formatted, "the context starts with the formatted chat")

  msgs[#msgs + 1] = {role = "assistant", content = reply}
  msgs[#msgs + 1] = {role = "user", content = "And then?"}
  local reply2 = collect(s:chat(msgs, {max_tokens = 12}))
  local fresh <close> = assert(model:session(GREEDY))
  local fresh_reply2 = collect(fresh:chat(msgs, {max_tokens = 12}))
  H.eq(reply2, fresh_reply2, "second turn: reused prefix == fresh session")
  H.same_ids(s:tokens(), fresh:tokens(), "same context")

  -- The same conversation again: everything is already in the context but one token.
  local again = collect(s:chat(msgs, {max_tokens = 12}))
  H.eq(again, fresh_reply2, "repeating a conversation")

  -- A different conversation: the context is cut back to the common prefix.
  local other = {{role = "user", content = "Something else"}}
  local r1 = collect(s:chat(other, {max_tokens = 8}))
  local f2 <close> = assert(model:session(GREEDY))
  H.eq(r1, collect(f2:chat(other, {max_tokens = 8})), "a new conversation on a used session")
  H.raises("messages[1].role must be a string", s.chat, s, {{content = "x"}})
  H.raises("unknown role", s.chat, s, {{role = "bard", content = "x"}}) -- iterators raise core errors
end

H.section("background text equals synchronous text")
do
  local opts = {max_tokens = 48, ignore_eos = true, temperature = 1.0, top_k = 0, top_p = 1, min_p = 0, seed = 1234}
  local a <close> = assert(model:session{n_ctx = 512})
  local sync = collect(a:generate("Once upon a time", opts))
  local b <close> = assert(model:session{n_ctx = 512})
  assert(b:start("Once upon a time", opts))
  local polled = poll_all(b)
  H.check(#sync > 0, "sampled text is not empty")
  H.eq(polled, sync, "start/poll text == generate text (seed 1234)")
  H.same_ids(b:tokens(), a:tokens(), "same context")

  local c <close> = assert(model:session(GREEDY))
  local msgs = {{role = "user", content = "Hi there"}}
  local chat_sync = collect(c:chat(msgs, {max_tokens = 16}))
  local d <close> = assert(model:session(GREEDY))
  assert(d:start_chat(msgs, {max_tokens = 16}))
  H.eq(poll_all(d), chat_sync, "start_chat/poll text == chat text")

  -- Stop strings in the background, with wait().
  local e <close> = assert(model:session(GREEDY))
  assert(e:start("Once upon a time", {max_tokens = 40, ignore_eos = true, stop = "<unused161>"}))
  local text, done, reason = e:wait()
  H.eq(text, greedy_text:sub(1, greedy_text:find("<unused161>", 1, true) - 1), "wait() text with a stop string")
  H.eq(done, true, "done")
  H.eq(reason, "stop", "reason = stop")
end

H.done()

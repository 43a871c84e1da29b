-- generate.lua - stream a completion to stdout.
--
--   lua5.4 examples/lua/generate.lua MODEL_DIR [PROMPT] [MAX_TOKENS]
--
-- with LUA_CPATH pointing at the directory of gemma3n.so, e.g.
--   LUA_CPATH='build/bindings/lua/?.so' lua5.4 examples/lua/generate.lua tests/data/tiny_chat "Once upon a time"
local gemma3n = require "gemma3n"

local path = arg[1] or error("usage: generate.lua MODEL_DIR [PROMPT] [MAX_TOKENS]")
local prompt = arg[2] or "Once upon a time"
local max_tokens = math.tointeger(tonumber(arg[3] or "64"))

-- Runtime failures come back as nil, message, code (here: "io" for a bad path).
local model <close>, msg, code = gemma3n.load(path)
if not model then
  io.stderr:write(("cannot load %s: %s (%s)\n"):format(path, msg, code))
  os.exit(1)
end

local session <close> = assert(model:session{n_ctx = 1024, temperature = 0.8, top_p = 0.95, seed = 42})

-- One piece of text per token; breaking out of the loop would close the generation.
local n = 0
local t0 = gemma3n.now()
io.write(prompt)
for piece in session:generate(prompt, {max_tokens = max_tokens}) do
  io.write(piece)
  io.flush()
  n = n + 1
end
local dt = gemma3n.now() - t0
io.write(("\n\n[%d tokens in %.2f s]\n"):format(n, dt))

-- game_loop.lua - a fake 60 Hz game loop that keeps its frame time while
-- the model generates in the background (session:start / poll).
--
--   lua5.4 examples/lua/game_loop.lua MODEL_DIR [PROMPT] [MAX_TOKENS]
--
-- Each frame does the game's work, then polls the session: poll never
-- waits for the model, it returns the text produced since the last frame.
local gemma3n = require "gemma3n"

local path = arg[1] or error("usage: game_loop.lua MODEL_DIR [PROMPT] [MAX_TOKENS]")
local prompt = arg[2] or "Hello"
local max_tokens = math.tointeger(tonumber(arg[3] or "200"))
local FRAME = 1 / 60

local model <close> = assert(gemma3n.load(path, {n_threads = 1}))
local npc <close> = assert(model:session{n_ctx = 1024, temperature = 0.8, seed = 7})
assert(npc:start(gemma3n.format_chat{{role = "user", content = prompt}}, {max_tokens = max_tokens}))

local function update_world(frame) -- stands in for physics, input, rendering
  local x = 0
  for i = 1, 3000 do x = x + math.sin(frame + i) end
  return x
end

local said, frames, max_frame, late = {}, 0, 0, 0
local start = gemma3n.now()
local deadline = start
while true do
  local t0 = gemma3n.now()
  update_world(frames)
  local text, done, reason = npc:poll()
  if text == nil then error("generation failed: " .. tostring(done) .. " (" .. tostring(reason) .. ")") end
  said[#said + 1] = text -- a game would append it to the speech bubble
  local work = gemma3n.now() - t0
  max_frame = math.max(max_frame, work)
  frames = frames + 1
  if done then
    print(("finished: %s"):format(reason))
    break
  end
  deadline = deadline + FRAME
  local now = gemma3n.now()
  if now > deadline then late, deadline = late + 1, now else gemma3n.sleep(deadline - now) end
end

local elapsed = gemma3n.now() - start
print(("%d frames in %.2f s (%.1f fps), longest frame %.3f ms, %d late frames"):format(
  frames, elapsed, frames / elapsed, max_frame * 1000, late))
print(("NPC said: %q"):format(table.concat(said)))

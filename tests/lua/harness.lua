-- harness.lua - the few checks the Lua tests need, with a summary line
-- ("N passed, N failed") and a non-zero exit status on failure (ctest).
local H = {passed = 0, failed = 0}

local function where()
  local info = debug.getinfo(3, "Sl")
  return info.short_src .. ":" .. info.currentline
end

local function record(ok, msg)
  if ok then
    H.passed = H.passed + 1
  else
    H.failed = H.failed + 1
    print("FAIL " .. where() .. ": " .. msg)
  end
  return ok
end

function H.section(name) print("-- " .. name) end

function H.check(cond, msg) return record(cond and true or false, msg or "check failed") end

function H.eq(got, want, what)
  return record(got == want, string.format("%s: got %s, want %s", what or "value", tostring(got), tostring(want)))
end

-- Sequences of numbers equal element by element.
function H.same_ids(got, want, what)
  local ok = #got == #want
  for i = 1, math.min(#got, #want) do ok = ok and got[i] == want[i] end
  return record(ok, string.format("%s: got {%s}, want {%s}", what or "ids", table.concat(got, ","),
                                  table.concat(want, ",")))
end

-- max |a[i] - b[i]| over 1..n (a may be a gemma3n.Logits).
function H.max_diff(a, b, n)
  local d = 0
  for i = 1, n do d = math.max(d, math.abs(a[i] - b[i])) end
  return d
end

-- f(...) must raise an error whose message contains `fragment` (plain text).
function H.raises(fragment, f, ...)
  local ok, err = pcall(f, ...)
  if ok then return record(false, "expected an error containing '" .. fragment .. "', got none") end
  return record(tostring(err):find(fragment, 1, true) ~= nil,
                "expected an error containing '" .. fragment .. "', got: " .. tostring(err))
end

-- f(...) must return nil, message, code (the expected-failure triple).
function H.fails(code, fragment, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return record(false, "expected nil, msg, '" .. code .. "', but it raised: " .. tostring(r[2])) end
  local ok = r[2] == nil and type(r[3]) == "string" and r[4] == code and
             (fragment == nil or r[3]:find(fragment, 1, true) ~= nil)
  return record(ok, string.format("expected nil, msg~'%s', '%s'; got %s, %s, %s", fragment or "", code,
                                  tostring(r[2]), tostring(r[3]), tostring(r[4])))
end

function H.done()
  print(string.format("%d passed, %d failed", H.passed, H.failed))
  os.exit(H.failed == 0 and 0 or 1, true)
end

return H

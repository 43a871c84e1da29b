-- npy.lua - a small reader for the golden .npy files (format v1/v2/v3,
-- little-endian, C order; dtypes <f4, <f8, <i4, <i8).
--
--   local a = npy.load("tests/data/golden/text_tiny_a/logits_prefill.npy")
--   a.shape  -- {12, 512}
--   a.data   -- flat Lua sequence, row-major
--   npy.row(a, 12) -- the last row as a sequence
local npy = {}

local formats = {["<f4"] = "<f", ["<f8"] = "<d", ["<i4"] = "<i4", ["<i8"] = "<i8"}

function npy.load(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  assert(bytes:sub(1, 6) == "\x93NUMPY", path .. ": not a .npy file")
  local major = bytes:byte(7)
  local hlen, pos
  if major == 1 then
    hlen, pos = string.unpack("<I2", bytes, 9)
  else
    hlen, pos = string.unpack("<I4", bytes, 9)
  end
  local header = bytes:sub(pos, pos + hlen - 1)
  local descr = assert(header:match("'descr':%s*'([^']+)'"), path .. ": no descr")
  assert(header:match("'fortran_order':%s*False"), path .. ": Fortran order is not supported")
  local shape = {}
  for d in assert(header:match("'shape':%s*(%b())")):gmatch("%d+") do shape[#shape + 1] = tonumber(d) end
  local fmt = assert(formats[descr], path .. ": unsupported dtype " .. descr)
  local count = 1
  for _, d in ipairs(shape) do count = count * d end
  local data, at = {}, pos + hlen
  for i = 1, count do data[i], at = string.unpack(fmt, bytes, at) end
  return {shape = shape, data = data, dtype = descr}
end

-- Row r (1-based) of a 2-D array, as a sequence.
function npy.row(a, r)
  local cols = a.shape[#a.shape]
  local row = {}
  for j = 1, cols do row[j] = a.data[(r - 1) * cols + j] end
  return row
end

return npy

-- LuaRocks build of the gemma3n Lua 5.4 module.
--
--   luarocks --lua-version=5.4 make lua/gemma3n-scm-1.rockspec      (from the repository root)
--
-- Build type "cmake": CMake stays the one description of the build (it
-- reads core/sources.txt, the list setup.py reads too), so this file lists
-- no sources and cannot drift from them. LuaRocks runs CMake with the
-- variables below (tests, examples and the Python extension off, Lua's
-- headers from LuaRocks' own configuration), builds, then copies the one
-- file the rock needs, gemma3n.so, into its library tree. Needs CMake,
-- a C11 compiler and OpenBLAS (or add GM_BLAS = "OFF" to the variables).
rockspec_format = "3.0"
package = "gemma3n"
version = "scm-1"

source = {
  -- Placeholder until the project is published; `luarocks make` builds the checkout it runs in.
  url = "git+https://github.com/gemma3n/gemma3n.git",
}

description = {
  summary = "Gemma 3n inference on the CPU, with a non-blocking API for frame loops",
  detailed = [[
gemma3n runs Google's Gemma 3n models on a CPU from Hugging Face checkpoints,
matching the upstream reference. The Lua module offers models and sessions as
userdata (with __gc and __close), generation as a generic-for iterator, and
start/poll/cancel to generate on a native worker thread from a game loop.]],
  license = "Apache-2.0",
  labels = {"llm", "inference", "gemma"},
}

dependencies = {
  "lua >= 5.4, < 5.5",
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    GM_BUILD_TESTS = "OFF",
    GM_BUILD_EXAMPLES = "OFF",
    GM_BUILD_BENCH = "OFF",
    GM_BUILD_PYTHON = "OFF",
    GM_BUILD_LUA = "ON",
    GM_LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
  },
  build_pass = true,
  install_pass = false, -- CMake's install rules are for the C library; the rock only needs the module
  install = {
    lib = {"build.luarocks/bindings/lua/gemma3n.so"},
  },
  copy_directories = {"examples/lua"},
}

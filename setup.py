"""Builds the gemma3n Python package: the C extension gemma3n._gemma3n and
the pure-Python layer in python/gemma3n/.

The extension compiles the SAME core sources as CMake (core/sources.txt,
one path per line, '#' lines ignored), plus bindings/common/gm_bind.c and
bindings/python/*.c. Nothing is downloaded: it needs a C11 compiler, the
Python headers, NumPy and OpenBLAS (Debian: python3-dev python3-numpy
python3-setuptools libopenblas-dev).

    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation .

Environment:
    GEMMA3N_BLAS=0    build without OpenBLAS (slower prompt evaluation)
    GEMMA3N_DEBUG=1   -O0 -g, asserts on
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# The project's warning set (CMakeLists.txt GM_WARNINGS); no -march: the
# core dispatches on the CPU at run time.
WARNINGS = ["-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes",
            "-Wcast-qual", "-Wwrite-strings", "-Wno-unused-parameter"]


def rel(*parts):
    """A path relative to setup.py's directory (setuptools wants relative sources)."""
    return os.path.join(*parts)


def core_sources():
    """core/sources.txt: the list CMake reads too, so the two builds never drift."""
    with open(os.path.join(ROOT, "core", "sources.txt"), encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [rel("core", line) for line in lines if line and not line.startswith("#")]


def version():
    with open(os.path.join(ROOT, "core", "include", "gemma3n.h"), encoding="utf-8") as f:
        m = re.search(r'#define GEMMA3N_VERSION_STRING "([^"]+)"', f.read())
    return m.group(1) if m else "0.0.0"


def pkg_config(*args):
    """Output tokens of `pkg-config ARGS openblas`, or None when unavailable."""
    exe = shutil.which("pkg-config")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *args, "openblas"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.split()


def find_cblas_dir():
    """Where cblas.h lives when pkg-config does not know OpenBLAS."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    candidates = [os.path.join("/usr/include", multiarch, "openblas-pthread"),
                  os.path.join("/usr/include", multiarch, "openblas-openmp"),
                  os.path.join("/usr/include", multiarch),
                  "/usr/include/openblas", "/usr/local/include/openblas", "/usr/include",
                  "/usr/local/include", "/opt/homebrew/opt/openblas/include",
                  "/usr/local/opt/openblas/include"]
    candidates += glob.glob("/usr/include/*/openblas-pthread")
    for d in candidates:
        if os.path.exists(os.path.join(d, "cblas.h")):
            return d
    return None


def blas_config():
    """(define_macros, include_dirs, library_dirs, libraries) for OpenBLAS."""
    if os.environ.get("GEMMA3N_BLAS", "1") == "0":
        return [], [], [], []
    cflags, libs = pkg_config("--cflags-only-I"), pkg_config("--libs")
    if cflags is not None and libs is not None:
        inc = [t[2:] for t in cflags if t.startswith("-I")]
        if not any(os.path.exists(os.path.join(d, "cblas.h")) for d in inc):
            inc += [d for d in [find_cblas_dir()] if d]
        return ([("GM_USE_BLAS", None)], inc, [t[2:] for t in libs if t.startswith("-L")],
                [t[2:] for t in libs if t.startswith("-l")])
    inc = find_cblas_dir()
    if inc is None:
        sys.exit("gemma3n: OpenBLAS not found (cblas.h). Install libopenblas-dev, "
                 "or build without BLAS: GEMMA3N_BLAS=0 pip install --no-build-isolation .")
    return [("GM_USE_BLAS", None)], [inc], [], ["openblas"]


def numpy_include():
    try:
        import numpy
    except ImportError:
        sys.exit("gemma3n: NumPy is needed to build (Debian: apt-get install python3-numpy; "
                 "in a venv use --system-site-packages and pip install --no-build-isolation)")
    return numpy.get_include()


def extension():
    blas_macros, blas_inc, blas_libdirs, blas_libs = blas_config()
    debug = os.environ.get("GEMMA3N_DEBUG") == "1"
    sources = (core_sources() + [rel("bindings", "common", "gm_bind.c")]
               + sorted(rel("bindings", "python", os.path.basename(p))
                        for p in glob.glob(os.path.join(ROOT, "bindings", "python", "*.c"))))
    headers = [os.path.relpath(p, ROOT) for pattern in
               ("core/include/*.h", "core/src/*.h", "bindings/common/*.h", "bindings/python/*.h")
               for p in glob.glob(os.path.join(ROOT, pattern))]
    libs = blas_libs + [lib for lib in ("m", "pthread") if lib not in blas_libs]
    return Extension(
        "gemma3n._gemma3n",
        sources=sources,
        depends=sorted(headers) + ["core/sources.txt"],
        include_dirs=[rel("core", "include"), rel("core", "src"), rel("bindings", "common"),
                      numpy_include()] + blas_inc,
        define_macros=[("_GNU_SOURCE", None), ("GM_BUILD", None)] + blas_macros
        + ([] if debug else [("NDEBUG", None)]),
        library_dirs=blas_libdirs,
        libraries=libs,
        extra_compile_args=["-std=c11", "-fvisibility=hidden"] + WARNINGS
        + (["-O0", "-g"] if debug else ["-O3"]),
    )


setup(
    name="gemma3n",
    version=version(),
    description="Gemma 3n inference on the CPU (C11 engine with a CPython extension)",
    long_description=__doc__,
    python_requires=">=3.8",
    install_requires=["numpy"],
    packages=["gemma3n"],
    package_dir={"": "python"},
    package_data={"gemma3n": ["py.typed", "*.pyi"]},
    ext_modules=[extension()],
    zip_safe=False,
    # Not ./build: that name is taken by CMake build trees in this repository.
    options={"build": {"build_base": "build-setuptools"}},
)

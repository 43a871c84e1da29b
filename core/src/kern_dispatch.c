/*
 * kern_dispatch.c - which kernel table this process uses (see kernels.h).
 *
 * CPU features are read once (CPUID + XGETBV on x86, getauxval on Linux
 * AArch64). A variant is usable only if the CPU has every instruction set it
 * was compiled for AND the OS saves the register state those instructions
 * use (XCR0: XMM|YMM for AVX, + opmask|ZMM_Hi256|Hi16_ZMM for AVX-512);
 * ggml's x86 score skips the second check ("FIXME: this does not check for
 * OS support"), we do not.
 *
 * Global state: `state` below, written once inside pthread_once and only
 * read afterwards. It holds the chosen table (a pointer to a const struct)
 * and two strings describing the choice; nothing else in the kernel layer
 * is global or mutable. Detecting AMX asks Linux for the tile data state
 * (os_grants_amx): a per-process permission, granted once, never revoked.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(GM_KERN_X86) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if defined(GM_KERN_AMX) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(GM_KERN_NEON) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

/* ---- CPU features ---- */

enum {
    FEAT_AVX2 = 1u << 0, /* with AVX, FMA, F16C and OS YMM state */
    FEAT_AVX512 = 1u << 1, /* F + DQ + BW + VL (+ OS ZMM/opmask state) */
    FEAT_AVX512_VNNI = 1u << 2,
    FEAT_AVX512_BF16 = 1u << 3,
    FEAT_NEON = 1u << 4,
    FEAT_DOTPROD = 1u << 5,
    FEAT_AMX_INT8 = 1u << 6, /* AMX-TILE + AMX-INT8, tile state granted to this process */
};

#if defined(GM_KERN_X86) && (defined(__GNUC__) || defined(__clang__))
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    /* xgetbv with ecx = 0, encoded so no -mxsave is needed */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/*
 * Linux (5.16+) gives a process the AMX tile data state only on request
 * (arch_prctl ARCH_REQ_XCOMP_PERM, once, for all its threads); before that
 * the first tile instruction faults. Other systems: not used.
 */
static bool os_grants_amx(uint64_t xcr0) {
    if ((xcr0 & 0x60000) != 0x60000) return false; /* XTILECFG + XTILEDATA */
#if defined(GM_KERN_AMX) && defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

static unsigned detect_features(void) {
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12),
               f16c = c & (1u << 29);
    if (!osxsave || !avx) return 0;
    const uint64_t xcr0 = read_xcr0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;      /* XMM + YMM state */
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;    /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_ymm || __get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
               avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), vnni = c & (1u << 11),
               amx = (d & (1u << 24)) && (d & (1u << 25)); /* AMX-TILE, AMX-INT8 */
    const unsigned max_sub7 = a;
    bool bf16 = false;
    if (max_sub7 >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        bf16 = a & (1u << 5);
    }
    if (avx2 && fma && f16c) f |= FEAT_AVX2;
    if ((f & FEAT_AVX2) && os_zmm && avx512f && avx512dq && avx512bw && avx512vl) {
        f |= FEAT_AVX512;
        if (vnni) f |= FEAT_AVX512_VNNI;
        if (bf16) f |= FEAT_AVX512_BF16;
        if (amx && os_grants_amx(xcr0)) f |= FEAT_AMX_INT8;
    }
    return f;
}
#elif defined(GM_KERN_NEON)
static unsigned detect_features(void) {
    unsigned f = FEAT_NEON; /* Advanced SIMD is baseline on AArch64 */
#if defined(__linux__)
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f |= FEAT_DOTPROD;
#elif defined(__APPLE__)
    f |= FEAT_DOTPROD; /* every Apple AArch64 CPU has it */
#endif
    return f;
}
#else
static unsigned detect_features(void) { return 0; }
#endif

/* ---- the variant list, best last ---- */

typedef struct variant {
    const char *name;
    const gm_kernels *table;
    unsigned needs; /* FEAT_* bits the CPU must have */
} variant;

static const variant variants[] = {
    {"ref", &gm_kernels_ref, 0},
#if defined(GM_KERN_X86)
    {"avx2", &gm_kernels_avx2, FEAT_AVX2},
    {"avx512", &gm_kernels_avx512, FEAT_AVX2 | FEAT_AVX512},
    {"avx512_vnni", &gm_kernels_avx512_vnni, FEAT_AVX2 | FEAT_AVX512 | FEAT_AVX512_VNNI},
    {"avx512_bf16", &gm_kernels_avx512_bf16,
     FEAT_AVX2 | FEAT_AVX512 | FEAT_AVX512_VNNI | FEAT_AVX512_BF16},
#if defined(GM_KERN_AMX)
    {"avx512_amx", &gm_kernels_avx512_amx,
     FEAT_AVX2 | FEAT_AVX512 | FEAT_AVX512_VNNI | FEAT_AVX512_BF16 | FEAT_AMX_INT8},
#endif
#endif
#if defined(GM_KERN_NEON)
    {"neon", &gm_kernels_neon, FEAT_NEON},
    {"neon_dotprod", &gm_kernels_neon_dotprod, FEAT_NEON | FEAT_DOTPROD},
#endif
};

/* ---- the once-initialized state ---- */

static struct {
    unsigned features;
    const gm_kernels *chosen;
    char selection[128];
    char feature_list[96];
} state;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static bool supported(const variant *v) { return (state.features & v->needs) == v->needs; }

static void describe_features(void) {
    static const struct { unsigned bit; const char *name; } names[] = {
        {FEAT_AVX2, "avx2+fma+f16c"}, {FEAT_AVX512, "avx512f+dq+bw+vl"}, {FEAT_AVX512_VNNI, "avx512_vnni"},
        {FEAT_AVX512_BF16, "avx512_bf16"}, {FEAT_NEON, "neon"}, {FEAT_DOTPROD, "dotprod"},
        {FEAT_AMX_INT8, "amx_int8"},
    };
    size_t len = 0;
    state.feature_list[0] = '\0';
    for (size_t i = 0; i < GM_ARRAY_LEN(names); i++) {
        if (!(state.features & names[i].bit)) continue;
        int w = snprintf(state.feature_list + len, sizeof state.feature_list - len, "%s%s",
                         len ? " " : "", names[i].name);
        if (w < 0 || (size_t)w >= sizeof state.feature_list - len) break;
        len += (size_t)w;
    }
}

static void init_state(void) {
    state.features = detect_features();
    describe_features();
    const variant *best = &variants[0];
    for (size_t i = 0; i < GM_ARRAY_LEN(variants); i++)
        if (supported(&variants[i])) best = &variants[i];

    const char *env = getenv("GEMMA3N_KERNELS");
    if (env && *env) {
        const variant *want = NULL;
        for (size_t i = 0; i < GM_ARRAY_LEN(variants); i++)
            if (strcmp(env, variants[i].name) == 0) want = &variants[i];
        if (want && supported(want)) {
            state.chosen = want->table;
            snprintf(state.selection, sizeof state.selection, "%s (GEMMA3N_KERNELS=%s)", want->name,
                     want->name);
            return;
        }
        state.chosen = best->table;
        snprintf(state.selection, sizeof state.selection, "%s (GEMMA3N_KERNELS=%.40s ignored: %s)",
                 best->name, env, want ? "not supported by this CPU" : "unknown variant");
        return;
    }
    state.chosen = best->table;
    snprintf(state.selection, sizeof state.selection, "%s (auto)", best->name);
}

static void ensure_state(void) { pthread_once(&state_once, init_state); }

const gm_kernels *gm_kern(void) {
    ensure_state();
    return state.chosen;
}

const char *gm_kern_selection(void) {
    ensure_state();
    return state.selection;
}

const char *gm_kern_cpu_features(void) {
    ensure_state();
    return state.feature_list;
}

int gm_kern_variant_count(void) { return (int)GM_ARRAY_LEN(variants); }

const char *gm_kern_variant_name(int i) {
    return i >= 0 && i < gm_kern_variant_count() ? variants[i].name : NULL;
}

const gm_kernels *gm_kern_variant(int i) {
    ensure_state();
    if (i < 0 || i >= gm_kern_variant_count() || !supported(&variants[i])) return NULL;
    return variants[i].table;
}

const gm_kernels *gm_kern_by_name(const char *name) {
    for (int i = 0; name && i < gm_kern_variant_count(); i++)
        if (strcmp(name, variants[i].name) == 0) return gm_kern_variant(i);
    return NULL;
}

/* ---- threaded GEMV ---- */

int gm_kern_gemv_plan(gm_kern_gemv_job *job, int n_threads) {
    if (job->rows <= 0) {
        job->rows_per_task = 1;
        return 0;
    }
    if (n_threads < 1) n_threads = 1;
    /* About 8 tasks per thread so a slow thread does not hold the others up,
     * blocks of at least 16 rows (a multiple of 4: the SIMD GEMVs do 4 rows a pass). */
    int64_t per = job->rows / ((int64_t)n_threads * 8);
    per = per < 16 ? 16 : (per + 3) / 4 * 4;
    if (job->type == GM_KERN_Q4_0X16) per = (per + 15) / 16 * 16; /* whole tile groups */
    int64_t tasks = (job->rows + per - 1) / per;
    if (tasks > INT32_MAX) { /* absurd row counts: fewer, larger blocks */
        per = (job->rows + INT32_MAX - 1) / INT32_MAX;
        per = (per + 15) / 16 * 16;
        tasks = (job->rows + per - 1) / per;
    }
    job->rows_per_task = per;
    return (int)tasks;
}

void gm_kern_gemv_range(const gm_kern_gemv_job *j, int64_t r0, int64_t r1) {
    const gm_kernels *k = j->k;
    switch (j->type) {
    case GM_KERN_F32: k->gemv_f32(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_BF16: k->gemv_bf16(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_F16: k->gemv_f16(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_BF16_BF16: k->gemv_bf16_bf16(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_Q8_0: k->gemv_q8_0(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_Q4_0: k->gemv_q4_0(j->W, j->ld, j->x, j->n, j->y, r0, r1); break;
    case GM_KERN_Q4_0X16:
        k->matmul_q4_0x16(j->W, j->ld / 32, j->x, j->xa, j->n / 32, 1, j->y, j->rows, r0, r1);
        break;
    }
}

void gm_kern_gemv_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    (void)thread;
    const gm_kern_gemv_job *j = ctx;
    const int64_t r0 = (int64_t)task * j->rows_per_task;
    const int64_t r1 = GM_MIN(r0 + j->rows_per_task, j->rows);
    if (r0 < r1) gm_kern_gemv_range(j, r0, r1);
}

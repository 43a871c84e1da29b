/* platform.c - files, mappings and CPU count (POSIX). */
#define _POSIX_C_SOURCE 200809L
#include "gm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

gm_status gm_map_file(const char *path, gm_mapped_file *out, gm_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gm_fail(err, GM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return gm_fail(err, GM_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return gm_fail(err, GM_ERR_IO, "%s: not a regular file", path);
    }
    out->path = gm_strndup(path, strlen(path));
    if (!out->path) {
        close(fd);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            gm_free(out->path);
            memset(out, 0, sizeof *out);
            return gm_fail(err, GM_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    return GM_OK;
}

void gm_unmap_file(gm_mapped_file *f) {
    if (!f) return;
    if (f->data) munmap((void *)(uintptr_t)f->data, f->size);
    gm_free(f->path);
    memset(f, 0, sizeof *f);
}

gm_status gm_read_file(const char *path, char **data, size_t *size, gm_error *err) {
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return gm_fail(err, GM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gm_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (!gm_buf_append(&b, chunk, n)) {
            fclose(fp);
            gm_buf_free(&b);
            return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        }
    }
    bool failed = ferror(fp);
    fclose(fp);
    if (failed) {
        gm_buf_free(&b);
        return gm_fail(err, GM_ERR_IO, "%s: read error", path);
    }
    if (!b.data && !gm_buf_append(&b, "", 0))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    *data = b.data;
    *size = b.len;
    return GM_OK;
}

bool gm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool gm_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *gm_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = gm_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

int gm_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void gm_release_pages(const void *p, size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n == 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

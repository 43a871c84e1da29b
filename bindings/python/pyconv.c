/*
 * pyconv.c - conversions between Python objects and what the core takes:
 * token lists <-> int32 buffers, text -> UTF-8 bytes, and keyword options
 * -> gm_bind_params. Option names, groups, types and ranges come from the
 * table shared with the Lua binding (bindings/common/gm_bind.h); this file
 * only turns Python values into the C values that table describes.
 */
#include "gmpy.h"

/* ---- token ids ---- */

void gmpy_ids_free(gmpy_ids *ids) {
    PyMem_Free(ids->v);
    ids->v = NULL;
    ids->n = 0;
}

/* One element: an int (or anything with __index__) inside int32. */
static int id_from_item(PyObject *item, const char *argname, Py_ssize_t i, int32_t *out) {
    if (!PyIndex_Check(item) || PyBool_Check(item)) {
        PyErr_Format(PyExc_TypeError, "%s[%zd] must be an int token id, not %.80s", argname, i,
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    int overflow = 0;
    PyObject *num = PyNumber_Index(item);
    long long v = num ? PyLong_AsLongLongAndOverflow(num, &overflow) : -1;
    Py_XDECREF(num);
    if (!num || (v == -1 && PyErr_Occurred())) return -1;
    if (overflow || v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(gmpy_ArgumentError, "%s[%zd] is not a token id (outside int32)", argname, i);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* A 1-D NumPy array of an integer dtype. */
static int ids_from_array(PyArrayObject *a, const char *argname, gmpy_ids *out) {
    if (PyArray_NDIM(a) != 1 || !PyArray_ISINTEGER(a)) {
        PyErr_Format(PyExc_TypeError, "%s must be a 1-D integer array (got %d-D %s)", argname,
                     PyArray_NDIM(a), PyArray_DESCR(a)->typeobj->tp_name);
        return -1;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FROMANY((PyObject *)a, NPY_INT64, 1, 1,
                                                        NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!c) return -1;
    npy_intp n = PyArray_DIM(c, 0);
    const int64_t *src = (const int64_t *)PyArray_DATA(c);
    out->v = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *out->v);
    if (!out->v) {
        Py_DECREF(c);
        PyErr_NoMemory();
        return -1;
    }
    for (npy_intp i = 0; i < n; i++) {
        if (src[i] < INT32_MIN || src[i] > INT32_MAX) {
            PyErr_Format(gmpy_ArgumentError, "%s[%zd] is not a token id (outside int32)", argname,
                         (Py_ssize_t)i);
            Py_DECREF(c);
            gmpy_ids_free(out);
            return -1;
        }
        out->v[i] = (int32_t)src[i];
    }
    out->n = (size_t)n;
    Py_DECREF(c);
    return 0;
}

int gmpy_ids_from_object(PyObject *obj, const char *argname, gmpy_ids *out) {
    out->v = NULL;
    out->n = 0;
    if (PyArray_Check(obj)) return ids_from_array((PyArrayObject *)obj, argname, out);
    if (PyUnicode_Check(obj) || PyBytes_Check(obj) || PyByteArray_Check(obj) || !PySequence_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of int token ids, not %.80s", argname,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *seq = PySequence_Fast(obj, "token ids must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    out->v = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *out->v);
    if (!out->v) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (id_from_item(PySequence_Fast_GET_ITEM(seq, i), argname, i, &out->v[i]) < 0) {
            Py_DECREF(seq);
            gmpy_ids_free(out);
            return -1;
        }
    out->n = (size_t)n;
    Py_DECREF(seq);
    return 0;
}

PyObject *gmpy_ids_to_list(const int32_t *ids, size_t n) {
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    return list;
}

/* ---- text ---- */

PyObject *gmpy_text_bytes(PyObject *text, const char *argname) {
    if (PyUnicode_Check(text)) {
        PyObject *b = PyUnicode_AsUTF8String(text);
        if (!b && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear(); /* lone surrogates */
            PyErr_Format(gmpy_ArgumentError, "%s is not valid Unicode (lone surrogate)", argname);
        }
        return b;
    }
    if (PyBytes_Check(text)) {
        Py_INCREF(text);
        return text;
    }
    if (PyByteArray_Check(text) || PyMemoryView_Check(text)) return PyBytes_FromObject(text);
    return PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.80s", argname,
                        Py_TYPE(text)->tp_name);
}

/* ---- keyword helpers ---- */

PyObject *gmpy_kw_take(PyObject *kwargs, const char *name) {
    if (!kwargs) return NULL;
    PyObject *v = PyDict_GetItemString(kwargs, name); /* borrowed, never raises */
    if (!v) return NULL;
    Py_INCREF(v);
    PyDict_DelItemString(kwargs, name);
    return v;
}

int gmpy_flag(PyObject *obj, int dflt, const char *name) {
    if (!obj || obj == Py_None) return dflt;
    if (!PyBool_Check(obj) && !PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a bool, not %.80s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return PyObject_IsTrue(obj);
}

/* ---- options ---- */

/* A seed: any int in [0, 2^64), exactly (a double would round above 2^53). */
static int set_seed(gm_bind_params *p, const gm_bind_option *o, PyObject *v) {
    if (!PyIndex_Check(v) || PyBool_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.80s", o->name, Py_TYPE(v)->tp_name);
        return -1;
    }
    PyObject *i = PyNumber_Index(v);
    unsigned long long seed = i ? PyLong_AsUnsignedLongLong(i) : 0;
    Py_XDECREF(i);
    if (!i) return -1;
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        PyErr_Format(gmpy_ArgumentError, "%s must be in [0, 2**64), got %R", o->name, v);
        return -1;
    }
    gm_bind_set_seed(p, (uint64_t)seed);
    return 0;
}

/* The numeric value of an int/float/bool option, range-checked by gm_bind_set_number. */
static int set_number(gm_bind_params *p, const gm_bind_option *o, PyObject *v) {
    double d;
    if (o->type == GM_OPT_FLOAT) {
        if (!PyFloat_Check(v) && !PyIndex_Check(v) && !PyNumber_Check(v)) goto type_error;
        d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) return -1;
    } else {
        if (!PyIndex_Check(v) || (o->type == GM_OPT_INT && PyBool_Check(v))) goto type_error;
        PyObject *i = PyNumber_Index(v);
        if (!i) return -1;
        d = PyLong_AsDouble(i); /* huge ints become +-inf and fail the range check */
        Py_DECREF(i);
        if (d == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
            PyErr_Clear();
            d = HUGE_VAL;
        }
    }
    char msg[256];
    if (!gm_bind_set_number(p, o, d, msg, sizeof msg)) {
        PyErr_SetString(gmpy_ArgumentError, msg);
        return -1;
    }
    return 0;
type_error:
    PyErr_Format(PyExc_TypeError, "%s must be %s, not %.80s", o->name,
                 o->type == GM_OPT_FLOAT ? "a number" : o->type == GM_OPT_BOOL ? "a bool" : "an int",
                 Py_TYPE(v)->tp_name);
    return -1;
}

/* A name option (weights="q8_0", submodel="E2B"), parsed by gm_bind_set_string. */
static int set_string(gm_bind_params *p, const gm_bind_option *o, PyObject *v) {
    if (!PyUnicode_Check(v) && !PyBytes_Check(v) && !PyObject_HasAttrString(v, "__fspath__")) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.80s", o->name, Py_TYPE(v)->tp_name);
        return -1;
    }
    PyObject *bytes = NULL; /* str, bytes or a path (submodel may be a .json file) */
    if (!PyUnicode_FSConverter(v, &bytes)) return -1;
    char msg[256];
    int ok = gm_bind_set_string(p, o, PyBytes_AS_STRING(bytes), msg, sizeof msg);
    Py_DECREF(bytes);
    if (!ok) {
        PyErr_SetString(gmpy_ArgumentError, msg);
        return -1;
    }
    return 0;
}

/* stop: a str or a sequence of str (empty = no stop strings). */
static int set_stop(gm_bind_params *p, PyObject *v) {
    PyObject *seq = PyUnicode_Check(v) ? PyTuple_Pack(1, v)
                                       : PySequence_Fast(v, "stop must be a str or a list of str");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char *strs[GM_MAX_STOP_STRINGS];
    size_t lens[GM_MAX_STOP_STRINGS];
    int rc = -1;
    for (Py_ssize_t i = 0; i < n && i < GM_MAX_STOP_STRINGS; i++) {
        PyObject *s = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t len;
        if (!PyUnicode_Check(s)) {
            PyErr_Format(PyExc_TypeError, "stop[%zd] must be str, not %.80s", i, Py_TYPE(s)->tp_name);
            goto finally;
        }
        if (!(strs[i] = PyUnicode_AsUTF8AndSize(s, &len))) goto finally;
        lens[i] = (size_t)len;
    }
    char msg[256];
    if (!gm_bind_set_stop(p, strs, lens, (size_t)n, msg, sizeof msg)) {
        PyErr_SetString(gmpy_ArgumentError, msg);
        goto finally;
    }
    rc = 0;
finally:
    Py_DECREF(seq);
    return rc;
}

/* A logit_bias key: an int token id, or its decimal string (OpenAI's JSON form). */
static int bias_key(PyObject *k, int32_t *out) {
    PyObject *num = PyUnicode_Check(k) ? PyLong_FromUnicodeObject(k, 10) : NULL;
    if (PyUnicode_Check(k) && !num) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "logit_bias keys must be token ids, got %R", k);
        return -1;
    }
    int rc = id_from_item(num ? num : k, "logit_bias key", 0, out);
    Py_XDECREF(num);
    return rc;
}

/* logit_bias: {token_id: bias}. */
static int set_logit_bias(gm_bind_params *p, PyObject *v) {
    if (!PyDict_Check(v)) {
        PyErr_Format(PyExc_TypeError, "logit_bias must be a dict {token_id: bias}, not %.80s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyDict_Size(v), pos = 0, i = 0;
    int32_t *tokens = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *tokens);
    float *bias = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *bias);
    PyObject *key, *value;
    int rc = -1;
    if (!tokens || !bias) {
        PyErr_NoMemory();
        goto finally;
    }
    while (PyDict_Next(v, &pos, &key, &value)) {
        if (bias_key(key, &tokens[i]) < 0) goto finally;
        double b = PyFloat_AsDouble(value);
        if (b == -1.0 && PyErr_Occurred()) goto finally;
        bias[i++] = (float)b;
    }
    char msg[256];
    if (!gm_bind_set_logit_bias(p, tokens, bias, (size_t)n, msg, sizeof msg)) {
        PyErr_SetString(gmpy_ArgumentError, msg);
        goto finally;
    }
    rc = 0;
finally:
    PyMem_Free(tokens);
    PyMem_Free(bias);
    return rc;
}

/* Where an option of group g can be set (for "f() does not take x" messages). */
static const char *group_where(gm_opt_group g) {
    return g == GM_OPT_MODEL ? "Model()" : g == GM_OPT_SESSION ? "Model() or Model.session()" : "options";
}

/* "'x' is not an option of f() (valid: a, b, ...)" */
static void unknown_option(PyObject *key, unsigned groups, const char *func) {
    size_t n;
    const gm_bind_option *all = gm_bind_options(&n);
    PyObject *names = PyList_New(0);
    for (size_t i = 0; names && i < n; i++) {
        if (!(groups & GMPY_GROUP(all[i].group))) continue;
        PyObject *s = PyUnicode_FromString(all[i].name);
        if (!s || PyList_Append(names, s) < 0) Py_CLEAR(names);
        Py_XDECREF(s);
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *joined = names && sep ? PyUnicode_Join(sep, names) : NULL;
    if (joined)
        PyErr_Format(PyExc_TypeError, "%s got an unexpected keyword argument %R (options: %U)", func,
                     key, joined);
    Py_XDECREF(joined);
    Py_XDECREF(sep);
    Py_XDECREF(names);
}

static int apply_one(gm_bind_params *p, PyObject *key, PyObject *value, unsigned groups,
                     const char *func, unsigned *touched) {
    const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    const gm_bind_option *o = name ? gm_bind_find_option(name) : NULL;
    if (!o) {
        if (!PyErr_Occurred()) unknown_option(key, groups, func);
        return -1;
    }
    if (!(groups & GMPY_GROUP(o->group))) {
        PyErr_Format(PyExc_TypeError, "%s does not take %s: it is set in %s", func, name,
                     group_where(o->group));
        return -1;
    }
    if (value == Py_None) return 0;
    int rc;
    switch (o->type) {
    case GM_OPT_STOP: rc = set_stop(p, value); break;
    case GM_OPT_BIAS: rc = set_logit_bias(p, value); break;
    case GM_OPT_STRING: rc = set_string(p, o, value); break;
    case GM_OPT_SEED: rc = set_seed(p, o, value); break;
    default: rc = set_number(p, o, value); break;
    }
    if (rc == 0 && touched) *touched |= GMPY_GROUP(o->group);
    return rc;
}

int gmpy_apply_options(gm_bind_params *p, PyObject *kwargs, unsigned groups, const char *func,
                       unsigned *touched) {
    if (touched) *touched = 0;
    if (!kwargs) return 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(kwargs, &pos, &key, &value))
        if (apply_one(p, key, value, groups, func, touched) < 0) return -1;
    return 0;
}

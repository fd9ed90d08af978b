/*
 * Optional C accelerator for the per-message codecs of txamqp091.core.
 *
 * What it replaces, when built (see txamqp091/core/_accel.py):
 *   - codec.decode_table / codec.encode_table     (RabbitMQ field tables)
 *   - spec.BasicProperties.decode / .encode        (content header properties)
 *   - the body of core.channel.Channel.take_delivery (Basic.Deliver + header +
 *     one body frame in one buffer, decoded in one call)
 *
 * The pure-Python functions stay the reference implementation. This module
 * only handles well-formed input of the common types: on anything unusual
 * (a value type it does not know, a read past the end, bad UTF-8, an
 * out-of-range number) it calls the Python function it replaces with the same
 * arguments, so results and error messages are the Python ones by construction.
 * tests/core/test_speedups.py checks both agree on random and malformed input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_speedups_tables.h"

/* Bumped whenever the Python side's expectations change; _accel.py checks it. */
#define TX_ABI 1

/* Set by install(): the Python functions used for fallbacks, and the names. */
static PyObject *py_decode_table = NULL;      /* codec.decode_table (pure) */
static PyObject *py_encode_table = NULL;      /* codec.encode_table (pure) */
static PyObject *py_props_decode = NULL;      /* BasicProperties.decode.__func__ (pure) */
static PyObject *py_props_encode = NULL;      /* BasicProperties.encode (pure) */
static PyTypeObject *props_type = NULL;       /* BasicProperties */
static PyObject *prop_names[TX_PROP_COUNT];   /* interned field names */
static PyObject *empty_tuple = NULL;
static PyObject *empty_table_bytes = NULL;    /* b"\0\0\0\0" */

/* Return codes of the internal decoders/encoders. */
#define TX_OK 0
#define TX_ERROR (-1)   /* a Python exception is set */
#define TX_FALLBACK 1   /* not handled here: let the Python code decide */

#define MAX_DEPTH 64

static inline uint16_t rd16(const unsigned char *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t rd64(const unsigned char *p) { return ((uint64_t)rd32(p) << 32) | rd32(p + 4); }

/* ---------------------------------------------------------------- output buffer */

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[512];
} wbuf;

static void wb_init(wbuf *w)
{
    w->p = w->small;
    w->len = 0;
    w->cap = (Py_ssize_t)sizeof(w->small);
}

static void wb_free(wbuf *w)
{
    if (w->p != w->small)
        PyMem_Free(w->p);
}

static int wb_reserve(wbuf *w, Py_ssize_t extra)
{
    Py_ssize_t need = w->len + extra;
    if (need <= w->cap)
        return 0;
    Py_ssize_t cap = w->cap * 2;
    while (cap < need)
        cap *= 2;
    char *p;
    if (w->p == w->small) {
        p = PyMem_Malloc((size_t)cap);
        if (p)
            memcpy(p, w->small, (size_t)w->len);
    } else {
        p = PyMem_Realloc(w->p, (size_t)cap);
    }
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}

static inline int wb_put(wbuf *w, const void *data, Py_ssize_t n)
{
    if (wb_reserve(w, n) < 0)
        return -1;
    memcpy(w->p + w->len, data, (size_t)n);
    w->len += n;
    return 0;
}

static inline int wb_byte(wbuf *w, unsigned char c) { return wb_put(w, &c, 1); }

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static inline void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static inline int wb_u32(wbuf *w, uint32_t v)
{
    char b[4];
    put32(b, v);
    return wb_put(w, b, 4);
}

/* ---------------------------------------------------------------- table decoding */

static int decode_value(const unsigned char *b, Py_ssize_t *pos, Py_ssize_t end, int depth,
                        PyObject **out);

/* A table whose 4-byte length is at b[*pos]; it must end at or before `limit`. */
static int decode_table_at(const unsigned char *b, Py_ssize_t *pos, Py_ssize_t limit, int depth,
                           PyObject **out)
{
    Py_ssize_t o = *pos;
    if (depth > MAX_DEPTH || limit - o < 4)
        return TX_FALLBACK;
    Py_ssize_t end = o + 4 + (Py_ssize_t)rd32(b + o);
    if (end > limit || end < o)
        return TX_FALLBACK;
    o += 4;
    PyObject *table = PyDict_New();
    if (!table)
        return TX_ERROR;
    while (o < end) {
        Py_ssize_t klen = b[o];
        Py_ssize_t kend = o + 1 + klen;
        if (kend >= end) {
            Py_DECREF(table);
            return TX_FALLBACK;
        }
        PyObject *key = PyUnicode_DecodeUTF8((const char *)b + o + 1, klen, NULL);
        if (!key) {
            PyErr_Clear();
            Py_DECREF(table);
            return TX_FALLBACK;
        }
        o = kend;
        PyObject *value = NULL;
        int rc = decode_value(b, &o, end, depth, &value);
        if (rc != TX_OK) {
            Py_DECREF(key);
            Py_DECREF(table);
            return rc;
        }
        rc = PyDict_SetItem(table, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            Py_DECREF(table);
            return TX_ERROR;
        }
    }
    *pos = o;
    *out = table;
    return TX_OK;
}

static PyObject *unpack_double(const unsigned char *p)
{
    uint64_t bits = rd64(p);
    double d;
    memcpy(&d, &bits, sizeof d);
    return PyFloat_FromDouble(d);
}

/* One type letter and value at b[*pos], within `end`. */
static int decode_value(const unsigned char *b, Py_ssize_t *pos, Py_ssize_t end, int depth,
                        PyObject **out)
{
    Py_ssize_t o = *pos;
    if (o >= end)
        return TX_FALLBACK;
    unsigned char tag = b[o++];
    PyObject *v = NULL;
    switch (tag) {
    case 'S':
    case 'x': {
        if (end - o < 4)
            return TX_FALLBACK;
        Py_ssize_t n = (Py_ssize_t)rd32(b + o);
        o += 4;
        if (n > end - o)
            return TX_FALLBACK;
        if (tag == 'S') {
            v = PyUnicode_DecodeUTF8((const char *)b + o, n, NULL);
            if (!v) {
                PyErr_Clear();  /* not UTF-8: a LongStr, which Python wraps */
                return TX_FALLBACK;
            }
        } else {
            v = PyBytes_FromStringAndSize((const char *)b + o, n);
        }
        o += n;
        break;
    }
    case 'I':
        if (end - o < 4)
            return TX_FALLBACK;
        v = PyLong_FromLong((long)(int32_t)rd32(b + o));
        o += 4;
        break;
    case 'l': {
        if (end - o < 8)
            return TX_FALLBACK;
        int64_t x = (int64_t)rd64(b + o);
        if (x >= -0x80000000LL && x <= 0x7FFFFFFFLL)
            return TX_FALLBACK;  /* kept as an Int64 wrapper by Python */
        v = PyLong_FromLongLong((long long)x);
        o += 8;
        break;
    }
    case 't':
        if (end - o < 1 || b[o] > 1)
            return TX_FALLBACK;
        v = b[o] ? Py_True : Py_False;
        Py_INCREF(v);
        o += 1;
        break;
    case 'd':
        if (end - o < 8)
            return TX_FALLBACK;
        v = unpack_double(b + o);
        o += 8;
        break;
    case 'V':
        v = Py_None;
        Py_INCREF(v);
        break;
    case 'F': {
        int rc = decode_table_at(b, &o, end, depth + 1, &v);
        if (rc != TX_OK)
            return rc;
        break;
    }
    case 'A': {
        if (end - o < 4 || depth >= MAX_DEPTH)
            return TX_FALLBACK;
        Py_ssize_t aend = o + 4 + (Py_ssize_t)rd32(b + o);
        if (aend > end || aend < o)
            return TX_FALLBACK;
        o += 4;
        v = PyList_New(0);
        if (!v)
            return TX_ERROR;
        while (o < aend) {
            PyObject *item = NULL;
            int rc = decode_value(b, &o, aend, depth + 1, &item);
            if (rc != TX_OK) {
                Py_DECREF(v);
                return rc;
            }
            rc = PyList_Append(v, item);
            Py_DECREF(item);
            if (rc < 0) {
                Py_DECREF(v);
                return TX_ERROR;
            }
        }
        break;
    }
    default:
        return TX_FALLBACK;
    }
    if (!v)
        return TX_ERROR;
    *pos = o;
    *out = v;
    return TX_OK;
}

typedef struct {
    Py_buffer view;
    int held;
} bufref;

static int get_buffer(PyObject *obj, bufref *r)
{
    r->held = 0;
    if (PyObject_GetBuffer(obj, &r->view, PyBUF_SIMPLE) < 0)
        return -1;
    r->held = 1;
    return 0;
}

static void release_buffer(bufref *r)
{
    if (r->held)
        PyBuffer_Release(&r->view);
    r->held = 0;
}

/* decode_table(buf, offset) -> (dict, offset) */
static PyObject *tx_decode_table(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "decode_table(buf, offset)");
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    bufref r;
    if (get_buffer(args[0], &r) < 0)
        return NULL;
    PyObject *table = NULL;
    Py_ssize_t pos = offset;
    int rc = TX_FALLBACK;
    if (offset >= 0)
        rc = decode_table_at(r.view.buf, &pos, r.view.len, 0, &table);
    release_buffer(&r);
    if (rc == TX_ERROR)
        return NULL;
    if (rc == TX_FALLBACK)
        return PyObject_Vectorcall(py_decode_table, args, 2, NULL);
    PyObject *p = PyLong_FromSsize_t(pos);
    if (!p) {
        Py_DECREF(table);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, table, p);
    Py_DECREF(table);
    Py_DECREF(p);
    return result;
}

/* ---------------------------------------------------------------- table encoding */

static int encode_value(wbuf *w, PyObject *v, int depth);

/* A shortstr: a str of at most 255 UTF-8 bytes, after its length octet. */
static int put_shortstr(wbuf *w, PyObject *v)
{
    if (!PyUnicode_CheckExact(v))
        return TX_FALLBACK;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (!s) {
        PyErr_Clear();
        return TX_FALLBACK;
    }
    if (n > 255)
        return TX_FALLBACK;
    if (wb_byte(w, (unsigned char)n) < 0 || wb_put(w, s, n) < 0)
        return TX_ERROR;
    return TX_OK;
}

static int encode_table_into(wbuf *w, PyObject *table, int depth)
{
    if (table == Py_None)
        return wb_u32(w, 0) < 0 ? TX_ERROR : TX_OK;
    if (!PyDict_CheckExact(table) || depth > MAX_DEPTH)
        return TX_FALLBACK;
    Py_ssize_t at = w->len;
    if (wb_u32(w, 0) < 0)
        return TX_ERROR;
    Py_ssize_t i = 0;
    PyObject *key, *value;
    while (PyDict_Next(table, &i, &key, &value)) {
        int rc = put_shortstr(w, key); /* a field name is a shortstr */
        if (rc != TX_OK)
            return rc;
        rc = encode_value(w, value, depth);
        if (rc != TX_OK)
            return rc;
    }
    Py_ssize_t size = w->len - at - 4;
    if (size > 0xFFFFFFFFLL)
        return TX_FALLBACK;
    put32(w->p + at, (uint32_t)size);
    return TX_OK;
}

static int encode_value(wbuf *w, PyObject *v, int depth)
{
    char head[9];
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (!s) {
            PyErr_Clear();
            return TX_FALLBACK;
        }
        if (n > 0xFFFFFFFFLL)
            return TX_FALLBACK;
        head[0] = 'S';
        put32(head + 1, (uint32_t)n);
        if (wb_put(w, head, 5) < 0 || wb_put(w, s, n) < 0)
            return TX_ERROR;
        return TX_OK;
    }
    if (t == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return TX_FALLBACK;
        if (x == -1 && PyErr_Occurred())
            return TX_ERROR;
        if (x >= -0x80000000LL && x <= 0x7FFFFFFFLL) {
            head[0] = 'I';
            put32(head + 1, (uint32_t)(int32_t)x);
            return wb_put(w, head, 5) < 0 ? TX_ERROR : TX_OK;
        }
        head[0] = 'l';
        put64(head + 1, (uint64_t)x);
        return wb_put(w, head, 9) < 0 ? TX_ERROR : TX_OK;
    }
    if (t == &PyBool_Type) {
        head[0] = 't';
        head[1] = v == Py_True ? 1 : 0;
        return wb_put(w, head, 2) < 0 ? TX_ERROR : TX_OK;
    }
    if (v == Py_None)
        return wb_byte(w, 'V') < 0 ? TX_ERROR : TX_OK;
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        head[0] = 'd';
        put64(head + 1, bits);
        return wb_put(w, head, 9) < 0 ? TX_ERROR : TX_OK;
    }
    if (t == &PyBytes_Type) {
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (n > 0xFFFFFFFFLL)
            return TX_FALLBACK;
        head[0] = 'x';
        put32(head + 1, (uint32_t)n);
        if (wb_put(w, head, 5) < 0 || wb_put(w, PyBytes_AS_STRING(v), n) < 0)
            return TX_ERROR;
        return TX_OK;
    }
    if (t == &PyDict_Type) {
        if (wb_byte(w, 'F') < 0)
            return TX_ERROR;
        return encode_table_into(w, v, depth + 1);
    }
    if (t == &PyList_Type || t == &PyTuple_Type) {
        if (depth >= MAX_DEPTH)
            return TX_FALLBACK;
        if (wb_byte(w, 'A') < 0)
            return TX_ERROR;
        Py_ssize_t at = w->len;
        if (wb_u32(w, 0) < 0)
            return TX_ERROR;
        /* A list may change under us only through Python code, which we never call here. */
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        for (Py_ssize_t i = 0; i < n; i++) {
            int rc = encode_value(w, items[i], depth + 1);
            if (rc != TX_OK)
                return rc;
        }
        Py_ssize_t size = w->len - at - 4;
        if (size > 0xFFFFFFFFLL)
            return TX_FALLBACK;
        put32(w->p + at, (uint32_t)size);
        return TX_OK;
    }
    return TX_FALLBACK;
}

/* The encoded table, or NULL with an exception set; falls back to Python by itself. */
static PyObject *encode_table_obj(PyObject *table)
{
    if (table == Py_None || (PyDict_CheckExact(table) && PyDict_GET_SIZE(table) == 0)) {
        Py_INCREF(empty_table_bytes);
        return empty_table_bytes;
    }
    wbuf w;
    wb_init(&w);
    int rc = encode_table_into(&w, table, 0);
    PyObject *result = NULL;
    if (rc == TX_OK)
        result = PyBytes_FromStringAndSize(w.p, w.len);
    wb_free(&w);
    if (rc == TX_FALLBACK)
        return PyObject_CallOneArg(py_encode_table, table);
    return result;
}

static PyObject *tx_encode_table(PyObject *self, PyObject *table) { return encode_table_obj(table); }

/* ---------------------------------------------------------------- properties */

/* Decode properties at b[off:end] into a new BasicProperties (of `cls`). */
static int decode_props(PyTypeObject *cls, const unsigned char *b, Py_ssize_t len, Py_ssize_t off,
                        Py_ssize_t end, PyObject **out)
{
    if (off < 0 || end > len || end - off < 2)
        return TX_FALLBACK;
    unsigned int flags = rd16(b + off);
    if (flags & 1)
        return TX_FALLBACK;
    Py_ssize_t o = off + 2;
    PyObject *obj = cls->tp_new(cls, empty_tuple, NULL);
    if (!obj)
        return TX_ERROR;
    if (!(flags & 0xFFFE)) {
        if (o != end) {
            Py_DECREF(obj);
            return TX_FALLBACK;
        }
        *out = obj;
        return TX_OK;
    }
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (!dict) {
        PyErr_Clear();
        Py_DECREF(obj);
        return TX_FALLBACK;
    }
    int rc = TX_OK;
    for (int i = 0; i < TX_PROP_COUNT && rc == TX_OK; i++) {
        const struct tx_prop *p = &TX_PROPS[i];
        if (!(flags & p->flag))
            continue;
        PyObject *v = NULL;
        switch (p->kind) {
        case TX_SHORTSTR: {
            if (o >= end) {
                rc = TX_FALLBACK;
                break;
            }
            Py_ssize_t n = b[o];
            if (n > end - o - 1) {
                rc = TX_FALLBACK;
                break;
            }
            v = PyUnicode_DecodeUTF8((const char *)b + o + 1, n, NULL);
            if (!v) {
                PyErr_Clear();
                rc = TX_FALLBACK;
                break;
            }
            o += 1 + n;
            break;
        }
        case TX_OCTET:
            if (o >= end) {
                rc = TX_FALLBACK;
                break;
            }
            v = PyLong_FromLong(b[o]);
            o += 1;
            break;
        case TX_LONGLONG:
            if (end - o < 8) {
                rc = TX_FALLBACK;
                break;
            }
            v = PyLong_FromUnsignedLongLong((unsigned long long)rd64(b + o));
            o += 8;
            break;
        case TX_TABLE:
            rc = decode_table_at(b, &o, end, 0, &v);
            break;
        default:
            rc = TX_FALLBACK;
        }
        if (rc != TX_OK)
            break;
        if (!v) {
            rc = TX_ERROR;
            break;
        }
        if (PyDict_SetItem(dict, prop_names[i], v) < 0)
            rc = TX_ERROR;
        Py_DECREF(v);
    }
    Py_DECREF(dict);
    if (rc == TX_OK && o != end)
        rc = TX_FALLBACK;
    if (rc != TX_OK) {
        Py_DECREF(obj);
        return rc;
    }
    *out = obj;
    return TX_OK;
}

static PyObject *props_fallback(PyObject *cls, PyObject *buf, Py_ssize_t off, Py_ssize_t end)
{
    return PyObject_CallFunction(py_props_decode, "OOnn", cls, buf, off, end);
}

/* BasicProperties.decode(buf, offset, end), installed as a classmethod: `cls` is the class. */
static PyObject *tx_decode_properties(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "decode(buf, offset, end)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    if (end == -1 && PyErr_Occurred())
        return NULL;
    bufref r;
    if (get_buffer(args[0], &r) < 0)
        return NULL;
    PyObject *obj = NULL;
    int rc = decode_props((PyTypeObject *)cls, r.view.buf, r.view.len, off, end, &obj);
    release_buffer(&r);
    if (rc == TX_ERROR)
        return NULL;
    if (rc == TX_FALLBACK)
        return props_fallback(cls, args[0], off, end);
    return obj;
}

/* BasicProperties.encode(self), installed as a method. */
static PyObject *tx_encode_properties(PyObject *self, PyObject *unused)
{
    wbuf w;
    wb_init(&w);
    unsigned int flags = 0;
    int rc = TX_OK;
    w.len = 2;
    for (int i = 0; i < TX_PROP_COUNT && rc == TX_OK; i++) {
        const struct tx_prop *p = &TX_PROPS[i];
        PyObject *v = PyObject_GetAttr(self, prop_names[i]);
        if (!v) {
            rc = TX_ERROR;
            break;
        }
        if (v == Py_None) {
            Py_DECREF(v);
            continue;
        }
        flags |= p->flag;
        switch (p->kind) {
        case TX_SHORTSTR:
            rc = put_shortstr(&w, v);
            break;
        case TX_OCTET: {
            if (!PyLong_Check(v) || (Py_TYPE(v) != &PyLong_Type && Py_TYPE(v) != &PyBool_Type)) {
                rc = TX_FALLBACK;
                break;
            }
            long x = PyLong_AsLong(v);
            if (x == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                rc = TX_FALLBACK;
                break;
            }
            if (x < 0 || x > 255) {
                rc = TX_FALLBACK;
                break;
            }
            if (wb_byte(&w, (unsigned char)x) < 0)
                rc = TX_ERROR;
            break;
        }
        case TX_LONGLONG: {
            if (Py_TYPE(v) != &PyLong_Type) {
                rc = TX_FALLBACK;
                break;
            }
            unsigned long long x = PyLong_AsUnsignedLongLong(v);
            if (x == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                rc = TX_FALLBACK;
                break;
            }
            char b[8];
            put64(b, (uint64_t)x);
            if (wb_put(&w, b, 8) < 0)
                rc = TX_ERROR;
            break;
        }
        case TX_TABLE: {
            Py_ssize_t at = w.len;
            int trc = encode_table_into(&w, v, 0);
            if (trc == TX_FALLBACK) {
                /* Python's encode_table answers (or raises) for this one value. */
                w.len = at;
                PyObject *enc = PyObject_CallOneArg(py_encode_table, v);
                if (!enc) {
                    trc = TX_ERROR;
                } else {
                    char *s;
                    Py_ssize_t n;
                    if (PyBytes_AsStringAndSize(enc, &s, &n) < 0 || wb_put(&w, s, n) < 0)
                        trc = TX_ERROR;
                    else
                        trc = TX_OK;
                    Py_DECREF(enc);
                }
            }
            rc = trc;
            break;
        }
        default:
            rc = TX_FALLBACK;
        }
        Py_DECREF(v);
    }
    PyObject *result = NULL;
    if (rc == TX_OK) {
        w.p[0] = (char)(flags >> 8);
        w.p[1] = (char)flags;
        result = PyBytes_FromStringAndSize(w.p, w.len);
    }
    wb_free(&w);
    if (rc == TX_FALLBACK)
        return PyObject_CallOneArg(py_props_encode, self);
    return result;
}

/* ---------------------------------------------------------------- deliveries */

/* take_delivery(buf, start, end, channel_id, frame_max, delivery_class)
 *   -> (message, offset after the body frame) | None
 *
 * The Basic.Deliver arguments are at buf[start:end] (after class and method
 * ids); the content header and, when the body is not empty, exactly one body
 * frame must follow. Anything else returns None for the frame-by-frame path,
 * which reports errors. */
static PyObject *tx_take_delivery(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "take_delivery(buf, start, end, channel_id, frame_max, delivery_class)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    long channel_id = PyLong_AsLong(args[3]);
    Py_ssize_t frame_max = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    bufref r;
    if (get_buffer(args[0], &r) < 0)
        return NULL;
    const unsigned char *b = r.view.buf;
    Py_ssize_t limit = r.view.len;
    PyObject *ctag = NULL, *exchange = NULL, *rkey = NULL, *body = NULL, *props = NULL;
    PyObject *message = NULL, *result = NULL;

    if (start < 0 || end > limit || start >= end)
        goto none;
    Py_ssize_t o = start;
    Py_ssize_t n = b[o];
    if (n > end - o - 1)
        goto none;
    ctag = PyUnicode_DecodeUTF8((const char *)b + o + 1, n, NULL);
    if (!ctag)
        goto bad_utf8;
    o += 1 + n;
    if (end - o < 10)
        goto none;
    uint64_t delivery_tag = rd64(b + o);
    int redelivered = b[o + 8] & 1;
    n = b[o + 9];
    o += 10;
    if (n > end - o)
        goto none;
    exchange = PyUnicode_DecodeUTF8((const char *)b + o, n, NULL);
    if (!exchange)
        goto bad_utf8;
    o += n;
    if (o >= end)
        goto none;
    n = b[o];
    if (n > end - o - 1)
        goto none;
    rkey = PyUnicode_DecodeUTF8((const char *)b + o + 1, n, NULL);
    if (!rkey)
        goto bad_utf8;
    o += 1 + n;
    if (o != end)
        goto none;

    Py_ssize_t pos = end + 1;
    if (limit - pos < 22)
        goto none;
    Py_ssize_t size = (Py_ssize_t)rd32(b + pos + 3);
    Py_ssize_t header_end = pos + 7 + size;
    if (b[pos] != 2 || rd16(b + pos + 1) != channel_id || header_end >= limit
        || b[header_end] != 0xCE || size < 14 || size + 8 > frame_max
        || rd16(b + pos + 7) != 60 || rd16(b + pos + 9) != 0)
        goto none;
    uint64_t body_size = rd64(b + pos + 11);
    Py_ssize_t props_start = pos + 19;
    pos = header_end + 1;
    if (body_size) {
        if (limit - pos < 8)
            goto none;
        Py_ssize_t bsize = (Py_ssize_t)rd32(b + pos + 3);
        Py_ssize_t body_end = pos + 7 + bsize;
        if (b[pos] != 3 || rd16(b + pos + 1) != channel_id || (uint64_t)bsize != body_size
            || body_end >= limit || b[body_end] != 0xCE || bsize + 8 > frame_max)
            goto none;
        body = PyBytes_FromStringAndSize((const char *)b + pos + 7, bsize);
        if (!body)
            goto error;
        pos = body_end + 1;
    } else {
        body = PyBytes_FromStringAndSize(NULL, 0);
        if (!body)
            goto error;
    }
    int rc = decode_props(props_type, b, limit, props_start, header_end, &props);
    if (rc == TX_ERROR)
        goto error;
    if (rc == TX_FALLBACK) {
        /* Python's decoder raises the DecodeError (or decodes what we do not). */
        props = props_fallback((PyObject *)props_type, args[0], props_start, header_end);
        if (!props)
            goto error;
    }
    release_buffer(&r);
    {
        PyObject *dtag = PyLong_FromUnsignedLongLong((unsigned long long)delivery_tag);
        if (!dtag)
            goto error;
        PyObject *margs[8] = {args[3], ctag, dtag, redelivered ? Py_True : Py_False,
                              exchange, rkey, props, body};
        message = PyObject_Vectorcall(args[5], margs, 8, NULL);
        Py_DECREF(dtag);
    }
    if (!message)
        goto error;
    {
        PyObject *p = PyLong_FromSsize_t(pos);
        if (!p)
            goto error;
        result = PyTuple_Pack(2, message, p);
        Py_DECREF(p);
    }
    goto done;

bad_utf8:
    PyErr_Clear();
none:
    result = Py_None;
    Py_INCREF(result);
    goto done;
error:
    result = NULL;
done:
    release_buffer(&r);
    Py_XDECREF(ctag);
    Py_XDECREF(exchange);
    Py_XDECREF(rkey);
    Py_XDECREF(body);
    Py_XDECREF(props);
    Py_XDECREF(message);
    return result;
}

/* ---------------------------------------------------------------- install */

static PyMethodDef decode_properties_def = {
    "decode", (PyCFunction)(void (*)(void))tx_decode_properties, METH_FASTCALL,
    "Read property flags and values from ``buf[offset:end]`` (C accelerator)."};

static PyMethodDef encode_properties_def = {
    "encode", (PyCFunction)tx_encode_properties, METH_NOARGS,
    "Property flags followed by the present values (C accelerator)."};

/* install(properties_class, decode_table, encode_table): keep the Python versions for
 * fallbacks and put the C encode/decode on the properties class. */
static PyObject *tx_install(PyObject *self, PyObject *args)
{
    PyObject *cls, *dec, *enc;
    if (!PyArg_ParseTuple(args, "O!OO", &PyType_Type, &cls, &dec, &enc))
        return NULL;
    PyObject *pdec = PyObject_GetAttrString(cls, "decode");  /* bound classmethod */
    if (!pdec)
        return NULL;
    PyObject *pdec_func = PyObject_GetAttrString(pdec, "__func__");
    Py_DECREF(pdec);
    if (!pdec_func)
        return NULL;
    PyObject *penc = PyObject_GetAttrString(cls, "encode");  /* plain function */
    if (!penc) {
        Py_DECREF(pdec_func);
        return NULL;
    }
    PyObject *cdec = PyDescr_NewClassMethod((PyTypeObject *)cls, &decode_properties_def);
    PyObject *cenc = PyDescr_NewMethod((PyTypeObject *)cls, &encode_properties_def);
    if (!cdec || !cenc || PyObject_SetAttrString(cls, "decode", cdec) < 0
        || PyObject_SetAttrString(cls, "encode", cenc) < 0) {
        Py_XDECREF(cdec);
        Py_XDECREF(cenc);
        Py_DECREF(pdec_func);
        Py_DECREF(penc);
        return NULL;
    }
    Py_DECREF(cdec);
    Py_DECREF(cenc);
    Py_XSETREF(py_props_decode, pdec_func);
    Py_XSETREF(py_props_encode, penc);
    Py_INCREF(cls);
    Py_XSETREF(props_type, (PyTypeObject *)cls);
    Py_INCREF(dec);
    Py_XSETREF(py_decode_table, dec);
    Py_INCREF(enc);
    Py_XSETREF(py_encode_table, enc);
    Py_RETURN_NONE;
}

/* set_table_fallbacks(decode_table, encode_table): before install(), for codec.py. */
static PyObject *tx_set_table_fallbacks(PyObject *self, PyObject *args)
{
    PyObject *dec, *enc;
    if (!PyArg_ParseTuple(args, "OO", &dec, &enc))
        return NULL;
    Py_INCREF(dec);
    Py_XSETREF(py_decode_table, dec);
    Py_INCREF(enc);
    Py_XSETREF(py_encode_table, enc);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_table", (PyCFunction)(void (*)(void))tx_decode_table, METH_FASTCALL,
     "decode_table(buf, offset) -> (dict, offset)"},
    {"encode_table", (PyCFunction)tx_encode_table, METH_O, "encode_table(table) -> bytes"},
    {"take_delivery", (PyCFunction)(void (*)(void))tx_take_delivery, METH_FASTCALL,
     "take_delivery(buf, start, end, channel_id, frame_max, delivery_class)"},
    {"install", tx_install, METH_VARARGS,
     "install(properties_class, decode_table, encode_table)"},
    {"set_table_fallbacks", tx_set_table_fallbacks, METH_VARARGS,
     "set_table_fallbacks(decode_table, encode_table)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups",
                                    "C accelerator for txamqp091.core's per-message codecs.",
                                    -1, methods};

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    empty_tuple = PyTuple_New(0);
    empty_table_bytes = PyBytes_FromStringAndSize("\0\0\0\0", 4);
    if (!empty_tuple || !empty_table_bytes)
        goto fail;
    for (int i = 0; i < TX_PROP_COUNT; i++) {
        prop_names[i] = PyUnicode_InternFromString(TX_PROPS[i].name);
        if (!prop_names[i])
            goto fail;
    }
    if (PyModule_AddIntConstant(m, "ABI", TX_ABI) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

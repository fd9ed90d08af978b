/*
 * RabbitMQ field tables for _speedups.c: decode_table and encode_table, and the
 * table values inside them (nested tables and arrays too, up to MAX_DEPTH).
 *
 * Included once, by _speedups.c, after its shared helpers (the output buffer,
 * the big-endian readers, get_buffer, the TX_ return codes and the Python
 * fallbacks): a part of that one translation unit, split off by concern so that
 * no file holds the whole accelerator.
 */
#ifndef TXAMQP091_SPEEDUPS_FIELDTABLE_H
#define TXAMQP091_SPEEDUPS_FIELDTABLE_H

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

#endif /* TXAMQP091_SPEEDUPS_FIELDTABLE_H */

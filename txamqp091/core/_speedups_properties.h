/*
 * Content header properties for _speedups.c: BasicProperties.decode and .encode,
 * field by field from the generated TX_PROPS table (_speedups_tables.h); the
 * ``headers`` field goes through the table codec (_speedups_fieldtable.h).
 *
 * Included once, by _speedups.c, after _speedups_fieldtable.h: a part of that one
 * translation unit, split off by concern.
 */
#ifndef TXAMQP091_SPEEDUPS_PROPERTIES_H
#define TXAMQP091_SPEEDUPS_PROPERTIES_H

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
    /* Exactly BasicProperties: its fields are plain class attributes (None) that the
     * instance dict overrides, so a field found in the dict is the attribute, at the
     * cost of a dict lookup instead of an attribute lookup; one not there is looked
     * up as an attribute (a decoded header stores only the fields it carries). */
    PyObject *dict = NULL;
    if (Py_TYPE(self) == props_type) {
        dict = PyObject_GenericGetDict(self, NULL);
        if (!dict)
            PyErr_Clear();
    }
    for (int i = 0; i < TX_PROP_COUNT && rc == TX_OK; i++) {
        const struct tx_prop *p = &TX_PROPS[i];
        PyObject *v = dict ? PyDict_GetItemWithError(dict, prop_names[i]) : NULL;
        if (!v && dict && !PyErr_Occurred()) {
            /* Not set on the instance: the class attribute, which for a plain None in
             * the class's own dict is what the attribute lookup would find. */
            v = PyDict_GetItemWithError(props_type->tp_dict, prop_names[i]);
            if (v != Py_None)
                v = NULL;
        }
        if (v)
            Py_INCREF(v);
        else if (PyErr_Occurred())
            v = NULL;
        else
            v = PyObject_GetAttr(self, prop_names[i]);
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
    Py_XDECREF(dict);
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

#endif /* TXAMQP091_SPEEDUPS_PROPERTIES_H */

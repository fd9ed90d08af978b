/*
 * Content header properties for _speedups.c: BasicProperties.decode and .encode,
 * field by field from the generated TX_PROPS table (_speedups_tables.h); the
 * ``headers`` field goes through the table codec (_speedups_fieldtable.h); and
 * building a BasicProperties from field keywords.
 *
 * Included once, by _speedups.c, after _speedups_fieldtable.h: a part of that one
 * translation unit, split off by concern.
 */
#ifndef TXAMQP091_SPEEDUPS_PROPERTIES_H
#define TXAMQP091_SPEEDUPS_PROPERTIES_H

/* ---------------------------------------------------------------- properties */

/* The index of the field whose interned name `name` is (the pointer), or -1: a name
 * built at run time is not found here, and each caller says what it does then. */
static inline int prop_index(PyObject *name)
{
    for (int i = 0; i < TX_PROP_COUNT; i++)
        if (name == prop_names[i])
            return i;
    return -1;
}

/* obj.<field i> = v as the pure code's ``self.x = v`` sets it: through the type's
 * tp_setattro (so the instance keeps CPython's shared-key inline values, and a
 * subclass's descriptors and __setattr__ see it), without PyObject_SetAttr's checks of
 * a name that is this module's interned str. */
static inline int props_set(PyObject *obj, int i, PyObject *v)
{
    setattrofunc set = Py_TYPE(obj)->tp_setattro;
    return set ? set(obj, prop_names[i], v) : PyObject_SetAttr(obj, prop_names[i], v);
}

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
    /* Each field set as the pure decode's ``self.x = ...`` sets it (tp_setattro), so the
     * instance keeps CPython's shared-key inline values: filling its materialized
     * __dict__ instead made a split-table dict, whose attributes Python 3.11 reads
     * several times slower (props.correlation_id: ~360 Ir instead of ~75). A subclass's
     * descriptors and __setattr__ see the fields as the pure decode sets them. */
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
        if (props_set(obj, i, v) < 0)
            rc = TX_ERROR;
        Py_DECREF(v);
    }
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

/* One field's value appended to w and its flag set in *flags; None is absent. */
static int encode_prop(wbuf *w, const struct tx_prop *p, PyObject *v, unsigned int *flags)
{
    if (v == Py_None)
        return TX_OK;
    *flags |= p->flag;
    int rc = TX_OK;
    switch (p->kind) {
    case TX_SHORTSTR:
        rc = put_shortstr(w, v);
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
        if (wb_byte(w, (unsigned char)x) < 0)
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
        if (wb_put(w, b, 8) < 0)
            rc = TX_ERROR;
        break;
    }
    case TX_TABLE: {
        Py_ssize_t at = w->len;
        int trc = encode_table_into(w, v, 0);
        if (trc == TX_FALLBACK) {
            /* Python's encode_table answers (or raises) for this one value. */
            w->len = at;
            PyObject *enc = PyObject_CallOneArg(py_encode_table, v);
            if (!enc) {
                trc = TX_ERROR;
            } else {
                char *s;
                Py_ssize_t n;
                if (PyBytes_AsStringAndSize(enc, &s, &n) < 0 || wb_put(w, s, n) < 0)
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
    return rc;
}

/* The class's version tag when every field's class attribute was last seen to be None
 * (0: not seen). A type's tag changes whenever anything in its dict does. */
static unsigned int props_none_tag = 0;

/* Whether BasicProperties' own field attributes are all still None: what an absent
 * field reads as. Checked field by field once per version of the class. */
static int props_class_fields_none(void)
{
    PyTypeObject *tp = props_type;
    if (props_none_tag && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        && tp->tp_version_tag == props_none_tag)
        return 1;
    for (int i = 0; i < TX_PROP_COUNT; i++) {
        PyObject *v = PyDict_GetItemWithError(tp->tp_dict, prop_names[i]);
        if (v != Py_None) {
            PyErr_Clear();
            return 0;
        }
    }
    (void)_PyType_Lookup(tp, prop_names[0]); /* gives the class a tag if it has none */
    props_none_tag = (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
    return 1;
}

/* The fields an exact BasicProperties holds, from its instance dict in one pass (an
 * instance stores only the fields it carries): vals[i] a new reference or NULL (None).
 * 0 when that pass cannot tell: a key that is not a field's interned name (an attribute
 * of the user's, a name built at run time), a class field that is no longer None. */
static int props_present(PyObject *dict, PyObject **vals)
{
    if (!props_class_fields_none())
        return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        int i = prop_index(k);
        if (i < 0) {
            for (int j = 0; j < TX_PROP_COUNT; j++)
                Py_CLEAR(vals[j]);
            return 0;
        }
        Py_INCREF(v);
        vals[i] = v;
    }
    return 1;
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
     * up as an attribute. Most often the dict holds fields only: one pass over it
     * (props_present) finds them all, without a lookup per field. */
    PyObject *dict = NULL;
    PyObject *present[TX_PROP_COUNT] = {NULL};
    int have_present = 0;
    if (Py_TYPE(self) == props_type) {
        dict = PyObject_GenericGetDict(self, NULL);
        if (!dict)
            PyErr_Clear();
        else
            have_present = props_present(dict, present);
    }
    for (int i = 0; i < TX_PROP_COUNT && rc == TX_OK; i++) {
        const struct tx_prop *p = &TX_PROPS[i];
        if (have_present) {
            PyObject *v = present[i];
            present[i] = NULL;
            if (!v)
                continue;
            rc = encode_prop(&w, p, v, &flags);
            Py_DECREF(v);
            continue;
        }
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
        rc = encode_prop(&w, p, v, &flags);
        Py_DECREF(v);
    }
    for (int i = 0; i < TX_PROP_COUNT; i++)
        Py_XDECREF(present[i]);
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

/* ---------------------------------------------------------------- construction */

/* BasicProperties(**fields) without a Python frame: what the pure __init__ does for
 * keyword arguments that are field names, each at most once. Each field given a value
 * other than None is set, in FIELDS order, through the type's tp_setattro as the
 * __init__'s ``self.x = x`` would: the instance is the same, down to its dict's order
 * and CPython's shared-key layout (attribute reads after it are as fast as before).
 * Anything else (positional arguments, another name) calls the pure __init__, so the
 * errors are Python's. */

static PyObject *py_props_init = NULL;  /* BasicProperties.__init__ (pure) */
static newfunc props_object_new = NULL; /* object.__new__: the class's tp_new when installed */

/* Put `value` at its field's place in vals: 0 when `name` is not a field's interned
 * name (a name built at run time is not: the caller lets Python handle it) or is
 * there twice. */
static inline int props_take(PyObject **vals, PyObject *name, PyObject *value)
{
    int i = prop_index(name);
    if (i < 0 || vals[i])
        return 0;
    vals[i] = value;
    return 1;
}

static int props_store(PyObject *self, PyObject *const *vals)
{
    for (int i = 0; i < TX_PROP_COUNT; i++)
        if (vals[i] && vals[i] != Py_None && props_set(self, i, vals[i]) < 0)
            return -1;
    return 0;
}

/* What type_call asks of an __init__'s result. */
static int init_result(PyObject *res)
{
    if (!res)
        return -1;
    if (res != Py_None) {
        PyErr_Format(PyExc_TypeError, "__init__() should return None, not '%.200s'",
                     Py_TYPE(res)->tp_name);
        Py_DECREF(res);
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* The class's tp_init (type_call calls it after object.__new__). */
static int tx_props_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    if (Py_TYPE(self) == props_type && PyTuple_GET_SIZE(args) == 0
        && (!kwds || PyDict_CheckExact(kwds))) {
        PyObject *vals[TX_PROP_COUNT] = {NULL};
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        int ok = 1;
        while (ok && kwds && PyDict_Next(kwds, &pos, &k, &v))
            ok = props_take(vals, k, v);
        if (ok)
            return props_store(self, vals);
    }
    PyObject *init = PyMethod_New(py_props_init, self);  /* the pure __init__, bound */
    if (!init)
        return -1;
    PyObject *res = PyObject_Call(init, args, kwds);
    Py_DECREF(init);
    return init_result(res);
}

/* The pure __init__(self, *args, **kwnames' values), for a call the fast path leaves. */
static int props_init_python(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    PyObject *init = PyMethod_New(py_props_init, self);
    if (!init)
        return -1;
    PyObject *res = PyObject_Vectorcall(init, args, (size_t)nargs, kwnames);
    Py_DECREF(init);
    return init_result(res);
}

/* Calling the class, as its metaclass's tp_call does, for a call of a class whose
 * __init__ or __new__ is no longer the one installed. */
static PyObject *props_call_generic(PyObject *type, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs), *kwargs = NULL, *result = NULL;
    if (!tuple)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw) {
        if (!(kwargs = PyDict_New()))
            goto done;
        for (Py_ssize_t i = 0; i < nkw; i++)
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                goto done;
    }
    result = Py_TYPE(type)->tp_call(type, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* The class's vectorcall: BasicProperties(...) without type_call's argument tuple and
 * keyword dict. Only while the class's tp_init is still this module's and its tp_new
 * object's: assigning __init__ or __new__ on the class resets those slots (CPython's
 * update_slot), and the call is then the ordinary one. */
static PyObject *tx_props_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    PyTypeObject *tp = (PyTypeObject *)type;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (tp != props_type || tp->tp_init != tx_props_init || tp->tp_new != props_object_new)
        return props_call_generic(type, args, nargs, kwnames);
    PyObject *obj = tp->tp_new(tp, empty_tuple, NULL);
    if (!obj)
        return NULL;
    PyObject *vals[TX_PROP_COUNT] = {NULL};
    int ok = nargs == 0;
    if (ok && kwnames) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; ok && j < nkw; j++)
            ok = props_take(vals, PyTuple_GET_ITEM(kwnames, j), args[j]);
    }
    if ((ok ? props_store(obj, vals) : props_init_python(obj, args, nargs, kwnames)) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    return obj;
}

#endif /* TXAMQP091_SPEEDUPS_PROPERTIES_H */

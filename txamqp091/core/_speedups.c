/*
 * Optional C accelerator for the per-message codecs of txamqp091.core.
 *
 * What it replaces, when built (see txamqp091/core/_accel.py):
 *   - codec.decode_table / codec.encode_table     (RabbitMQ field tables)
 *   - spec.BasicProperties.decode / .encode        (content header properties)
 *   - spec.BasicProperties(...): construction with field keywords, as the class's
 *     tp_init and vectorcall (install_init; the Python __init__ stays in its dict)
 *   - the body of core.channel.Channel.take_delivery (Basic.Deliver + header +
 *     one body frame in one buffer, decoded in one call), and take_read: a read
 *     that is exactly one such delivery, without the parser's frame loop, and
 *     take_deliveries: the whole deliveries that follow one another on a channel
 *   - twisted._deferred.fire_each, the firing of the confirmed publishes an ack
 *     settles (_speedups_fire.h)
 *   - the parser's frame loop over a run of publisher acks on one channel, with
 *     Channel.handle_method's checks and its PublishAcked events (take_acks,
 *     _speedups_acks.h)
 *   - frames.encode_message / frames.encode_content (a publish's method frame,
 *     content header and body frames, built in one allocation)
 *   - plain_properties: whether validation.properties has nothing to check (a
 *     publish's fast accept, the RPC shape: a few short strings)
 *   - core.channel.Channel.publish, for an open channel with nothing queued and a
 *     publish method frame already in its cache (install_publish)
 *   - core.channel.Channel.send_ack, a consumer's every ack, on the same slots
 *     (install_send_ack)
 *   - client.channel_base.ChannelBase.basic_publish's common case (client_publish,
 *     a method of the class): the publish a channel accepts without validation,
 *     sends at once and answers with a waiter (install_client_publish)
 *   - message.Message.ack, when the ack goes straight into the core's output
 *     (install_message_ack, _speedups_ack.h)
 *   - tornado.runtime.FutureRuntime.resolve_all's loop over an ack's futures
 *     (settle_all, _speedups_settle.h)
 *
 * The pure-Python functions stay the reference implementation. This module
 * only handles well-formed input of the common types: on anything unusual
 * (a value type it does not know, a read past the end, bad UTF-8, an
 * out-of-range number) it calls the Python function it replaces with the same
 * arguments, so results and error messages are the Python ones by construction.
 * tests/core/test_speedups.py checks both agree on random and malformed input.
 *
 * One translation unit in three files: this one (shared helpers, deliveries, the
 * module), _speedups_fieldtable.h (field tables) and _speedups_properties.h
 * (content header properties), each included once below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#include "_speedups_tables.h"

/* Bumped whenever the Python side's expectations change; _accel.py checks it. */
#define TX_ABI 17

/* Set by install(): the Python functions used for fallbacks, and the names. */
static PyObject *py_decode_table = NULL;      /* codec.decode_table (pure) */
static PyObject *py_encode_table = NULL;      /* codec.encode_table (pure) */
static PyObject *py_props_decode = NULL;      /* BasicProperties.decode.__func__ (pure) */
static PyObject *py_props_encode = NULL;      /* BasicProperties.encode (pure) */
static PyTypeObject *props_type = NULL;       /* BasicProperties */
static PyObject *prop_names[TX_PROP_COUNT];   /* interned field names */
static PyObject *empty_tuple = NULL;
static PyObject *empty_table_bytes = NULL;    /* b"\0\0\0\0" */
static PyObject *py_encode_message = NULL;    /* frames.encode_message (pure) */
static PyObject *py_encode_content = NULL;    /* frames.encode_content (pure) */

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

/* ---------------------------------------------------------------- input buffers */

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

#include "_speedups_fieldtable.h"
#include "_speedups_properties.h"

/* ---------------------------------------------------------------- deliveries */

/* take_delivery(buf, start, end, channel_id, frame_max, delivery_class)
 *   -> (message, offset after the body frame) | None
 *
 * The Basic.Deliver arguments are at buf[start:end] (after class and method
 * ids); the content header and, when the body is not empty, exactly one body
 * frame must follow. Anything else returns None for the frame-by-frame path,
 * which reports errors. */
/* Delivery classes whose instances are built here without their __init__: slots
 * dataclasses whose generated __init__ only stores the eight delivery fields and the
 * defaults of the rest (register_delivery_class() in _accel.py checks that and hands
 * over the member descriptors). Any other class is called as usual. */
#define TX_FIELDS 8
#define TX_MAX_EXTRA 8
#define TX_MAX_CLASSES 4
typedef struct {
    PyTypeObject *cls;
    Py_ssize_t offsets[TX_FIELDS];
    int n_extra;
    Py_ssize_t extra_offsets[TX_MAX_EXTRA];
    PyObject *extra_defaults[TX_MAX_EXTRA];
} tx_layout;
static tx_layout layouts[TX_MAX_CLASSES];
static int n_layouts = 0;

static int slot_offset(PyObject *descr, Py_ssize_t *offset)
{
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_SetString(PyExc_TypeError, "a slot's member descriptor is expected");
        return -1;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
        PyErr_SetString(PyExc_TypeError, "an object slot is expected");
        return -1;
    }
    *offset = m->offset;
    return 0;
}

/* int 0: a new waiter's ``paused``, a flushed connection's ``_unflushed`` (set by the
 * installers that use it). */
static PyObject *small_zero = NULL;

/* The object slot at `offset` (one slot_offset gave) of obj: NULL while unset. */
static inline PyObject **slot_at(PyObject *obj, Py_ssize_t offset)
{
    return (PyObject **)((char *)obj + offset);
}

/* obj's slot at `offset` = value, whose reference it takes; the old value released. */
static inline void slot_put(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject **slot = slot_at(obj, offset);
    PyObject *old = *slot;
    *slot = value;
    Py_XDECREF(old);
}

/* Read a class's slot descriptors (a tuple of n) into offsets; `what` names the class
 * in the error ("unexpected channel layout"). */
static int layout_offsets(PyObject *descrs, Py_ssize_t n, Py_ssize_t *offsets, const char *what)
{
    if (PyTuple_GET_SIZE(descrs) != n) {
        PyErr_Format(PyExc_ValueError, "unexpected %s layout", what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (slot_offset(PyTuple_GET_ITEM(descrs, i), &offsets[i]) < 0)
            return -1;
    return 0;
}

/* set_delivery_layout(cls, field_descriptors, extra_descriptors, extra_defaults) */
static PyObject *tx_set_delivery_layout(PyObject *self, PyObject *args)
{
    PyObject *cls, *fields, *extra, *defaults;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyType_Type, &cls, &PyTuple_Type, &fields,
                          &PyTuple_Type, &extra, &PyTuple_Type, &defaults))
        return NULL;
    if (PyTuple_GET_SIZE(fields) != TX_FIELDS || PyTuple_GET_SIZE(extra) > TX_MAX_EXTRA
        || PyTuple_GET_SIZE(extra) != PyTuple_GET_SIZE(defaults)) {
        PyErr_SetString(PyExc_ValueError, "unexpected delivery layout");
        return NULL;
    }
    tx_layout l;
    memset(&l, 0, sizeof(l));
    l.cls = (PyTypeObject *)cls;
    for (int i = 0; i < TX_FIELDS; i++)
        if (slot_offset(PyTuple_GET_ITEM(fields, i), &l.offsets[i]) < 0)
            return NULL;
    l.n_extra = (int)PyTuple_GET_SIZE(extra);
    for (int i = 0; i < l.n_extra; i++) {
        if (slot_offset(PyTuple_GET_ITEM(extra, i), &l.extra_offsets[i]) < 0)
            return NULL;
        l.extra_defaults[i] = PyTuple_GET_ITEM(defaults, i);
    }
    for (int i = 0; i < n_layouts; i++)
        if (layouts[i].cls == l.cls)
            Py_RETURN_TRUE;  /* already known: the first layout stays */
    if (n_layouts == TX_MAX_CLASSES)
        Py_RETURN_FALSE;
    Py_INCREF(cls);
    for (int i = 0; i < l.n_extra; i++)
        Py_INCREF(l.extra_defaults[i]);
    layouts[n_layouts++] = l;
    Py_RETURN_TRUE;
}

/* An instance of cls from the eight field values (borrowed): built here for a
 * registered class, else cls(*values). */
static PyObject *new_delivery(PyObject *cls, PyObject *const *values)
{
    for (int k = 0; k < n_layouts; k++) {
        tx_layout *l = &layouts[k];
        if ((PyObject *)l->cls != cls)
            continue;
        PyObject *obj = l->cls->tp_alloc(l->cls, 0);
        if (!obj)
            return NULL;
        for (int i = 0; i < TX_FIELDS; i++) {
            Py_INCREF(values[i]);
            *(PyObject **)((char *)obj + l->offsets[i]) = values[i];
        }
        for (int i = 0; i < l->n_extra; i++) {
            Py_INCREF(l->extra_defaults[i]);
            *(PyObject **)((char *)obj + l->extra_offsets[i]) = l->extra_defaults[i];
        }
        return obj;
    }
    return PyObject_Vectorcall(cls, values, TX_FIELDS, NULL);
}

static PyObject *take_delivery_at(PyObject *bufobj, Py_ssize_t start, Py_ssize_t end,
                                   long channel_id, Py_ssize_t frame_max, PyObject *cls,
                                   PyObject *channel_obj);
static int decode_delivery(PyObject *bufobj, const unsigned char *b, Py_ssize_t limit,
                           Py_ssize_t start, Py_ssize_t end, long channel_id,
                           Py_ssize_t frame_max, PyObject *cls, PyObject *channel_obj,
                           PyObject **message_out, Py_ssize_t *next);

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
    return take_delivery_at(args[0], start, end, channel_id, frame_max, args[5], args[3]);
}

/* take_read(data, frame_max, max_message_size, delivery_class)
 *   -> (channel_id, message) | None
 *
 * A read that is exactly one whole delivery (an RPC's request or reply): one
 * Basic.Deliver method frame on a channel other than 0, its content header and at
 * most one body frame, and nothing else. The method frame is checked as the
 * parser's frame loop checks it (size within frame_max, frame-end octet, class 60
 * method 60); the rest as take_delivery does, with a frame limit of
 * min(frame_max, max_message_size + 8). Anything else returns None, and the
 * caller parses the read frame by frame, which reports errors. Whether the channel
 * may take a delivery is the caller's to check. */
static PyObject *tx_take_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "take_read(data, frame_max, max_message_size, delivery_class)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    Py_ssize_t frame_max = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_size = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return NULL;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    if (len < 7 + 4 + 1 || b[0] != 1)
        Py_RETURN_NONE;
    long channel_id = rd16(b + 1);
    Py_ssize_t size = (Py_ssize_t)rd32(b + 3);
    Py_ssize_t end = 7 + size;
    if (channel_id == 0 || size < 4 || size + 8 > frame_max || end >= len || b[end] != 0xCE
        || rd16(b + 7) != 60 || rd16(b + 9) != 60)
        Py_RETURN_NONE;
    /* The frames' sizes must add up to the read (a content header, then at most one
     * body frame) before anything is decoded: a read of a consumer's backlog starts
     * with a whole delivery too, which would be decoded here only to be dropped and
     * decoded again by the frame loop. */
    Py_ssize_t next = end + 1;
    if (len - next < 8 || b[next] != 2)
        Py_RETURN_NONE;
    next += 8 + (Py_ssize_t)rd32(b + next + 3);
    if (next != len
        && (next > len - 8 || b[next] != 3 || next + 8 + (Py_ssize_t)rd32(b + next + 3) != len))
        Py_RETURN_NONE;
    Py_ssize_t limit = frame_max;
    if (max_size < PY_SSIZE_T_MAX - 8 && max_size + 8 < limit)
        limit = max_size + 8;
    PyObject *cid = PyLong_FromLong(channel_id);
    if (!cid)
        return NULL;
    /* decoded straight from the bytes object (immutable: no buffer export needed) */
    PyObject *message = NULL, *result = NULL;
    Py_ssize_t pos = 0;
    int status = decode_delivery(args[0], b, len, 11, end, channel_id, limit, args[3], cid,
                                 &message, &pos);
    if (status == TX_OK) {
        if (pos == len) {
            result = PyTuple_Pack(2, cid, message);
        } else {
            result = Py_None;
            Py_INCREF(result);
        }
        Py_DECREF(message);
    } else if (status == TX_FALLBACK) {
        result = Py_None;
        Py_INCREF(result);
    }
    Py_DECREF(cid);
    return result;
}

/* take_deliveries(buf, start, end, channel_id, frame_max, delivery_class, events)
 *   -> offset after the last delivery taken | None
 *
 * take_delivery for the Basic.Deliver at buf[start:end], its message appended to
 * the list events; then the same for each whole delivery that follows on the same
 * channel, its method frame checked as the parser's frame loop checks one (size
 * within frame_max, frame-end octet, class 60 method 60): a consumer's backlog,
 * a read of many deliveries, in one call instead of one loop round and two Python
 * calls per delivery. None when the first is not whole (nothing appended); the
 * first frame that is not a whole delivery on this channel stops it, and the
 * parser goes on from the offset returned. Whether the channel may take a
 * delivery is the caller's to check: taking whole ones does not change that. */
static PyObject *tx_take_deliveries(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyList_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "take_deliveries(buf, start, end, channel_id, "
                                         "frame_max, delivery_class, events: list)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    long channel_id = PyLong_AsLong(args[3]);
    Py_ssize_t frame_max = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *events = args[6];
    bufref r;
    if (get_buffer(args[0], &r) < 0)
        return NULL;
    const unsigned char *b = r.view.buf;
    Py_ssize_t len = r.view.len;
    PyObject *message = NULL;
    Py_ssize_t pos = 0;
    int status = decode_delivery(args[0], b, len, start, end, channel_id, frame_max, args[5],
                                 args[3], &message, &pos);
    if (status != TX_OK) {
        release_buffer(&r);
        if (status == TX_ERROR)
            return NULL;
        Py_RETURN_NONE;
    }
    for (;;) {
        int appended = PyList_Append(events, message);
        Py_DECREF(message);
        if (appended < 0)
            goto error;
        /* The next frame: a whole Basic.Deliver method frame on this channel? */
        if (len - pos < 12 || b[pos] != 1 || (long)rd16(b + pos + 1) != channel_id)
            break;
        Py_ssize_t size = (Py_ssize_t)rd32(b + pos + 3);
        Py_ssize_t frame_end = pos + 7 + size;
        if (size < 4 || size + 8 > frame_max || frame_end >= len || b[frame_end] != 0xCE
            || rd16(b + pos + 7) != 60 || rd16(b + pos + 9) != 60)
            break;
        Py_ssize_t after = 0;
        status = decode_delivery(args[0], b, len, pos + 11, frame_end, channel_id, frame_max,
                                 args[5], args[3], &message, &after);
        if (status == TX_ERROR)
            goto error;
        if (status == TX_FALLBACK)
            break;
        pos = after;
    }
    release_buffer(&r);
    return PyLong_FromSsize_t(pos);
error:
    release_buffer(&r);
    return NULL;
}

/* The last consumer tag, exchange and routing key a delivery carried, with the str
 * decoded from them: a consumer's deliveries carry the same three again and again (an
 * RPC's replies too), and handing out the same immutable str again costs a memcmp
 * where decoding costs an allocation, the UTF-8 decoder and a free later (~800
 * instructions a delivery, callgrind). A value that differs is decoded and kept. */
typedef struct {
    Py_ssize_t len;
    PyObject *str;
    unsigned char bytes[255];
} shortstr_memo;
static shortstr_memo memo_ctag, memo_exchange, memo_rkey;

/* The str of the n (at most 255) UTF-8 octets at p, from memo when they are its last
 * ones: a new reference, or NULL with the decoder's error set. */
static PyObject *memo_shortstr(shortstr_memo *memo, const unsigned char *p, Py_ssize_t n)
{
    if (memo->str && memo->len == n && memcmp(memo->bytes, p, (size_t)n) == 0)
        return Py_NewRef(memo->str);
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    if (!s)
        return NULL;
    memo->len = n;
    memcpy(memo->bytes, p, (size_t)n);
    Py_XSETREF(memo->str, Py_NewRef(s));
    return s;
}

/* The delivery whose Basic.Deliver arguments are b[start:end], b being the limit
 * octets of bufobj (held by the caller; the Python properties decoder reads bufobj),
 * with its content header and body frame after them: TX_OK with *message (a new
 * reference) and *next (the offset after its last frame), TX_FALLBACK when it is not
 * whole or not what this decodes, TX_ERROR with an exception set. take_deliveries
 * (each delivery of a run, on the buffer it holds) and take_read (its bytes) call it
 * without the (message, offset) tuple and the buffer export of take_delivery_at. */
static int decode_delivery(PyObject *bufobj, const unsigned char *b, Py_ssize_t limit,
                           Py_ssize_t start, Py_ssize_t end, long channel_id,
                           Py_ssize_t frame_max, PyObject *cls, PyObject *channel_obj,
                           PyObject **message_out, Py_ssize_t *next)
{
    PyObject *ctag = NULL, *exchange = NULL, *rkey = NULL, *body = NULL, *props = NULL;
    PyObject *message = NULL;
    int status = TX_ERROR;

    if (start < 0 || end > limit || start >= end)
        goto none;
    Py_ssize_t o = start;
    Py_ssize_t n = b[o];
    if (n > end - o - 1)
        goto none;
    ctag = memo_shortstr(&memo_ctag, b + o + 1, n);
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
    exchange = memo_shortstr(&memo_exchange, b + o, n);
    if (!exchange)
        goto bad_utf8;
    o += n;
    if (o >= end)
        goto none;
    n = b[o];
    if (n > end - o - 1)
        goto none;
    rkey = memo_shortstr(&memo_rkey, b + o + 1, n);
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
            goto done;
        pos = body_end + 1;
    } else {
        body = PyBytes_FromStringAndSize(NULL, 0);
        if (!body)
            goto done;
    }
    int rc = decode_props(props_type, b, limit, props_start, header_end, &props);
    if (rc == TX_ERROR)
        goto done;
    if (rc == TX_FALLBACK) {
        /* Python's decoder raises the DecodeError (or decodes what we do not). */
        props = props_fallback((PyObject *)props_type, bufobj, props_start, header_end);
        if (!props)
            goto done;
    }
    {
        PyObject *dtag = PyLong_FromUnsignedLongLong((unsigned long long)delivery_tag);
        if (!dtag)
            goto done;
        PyObject *margs[8] = {channel_obj, ctag, dtag, redelivered ? Py_True : Py_False,
                              exchange, rkey, props, body};
        message = new_delivery(cls, margs);
        Py_DECREF(dtag);
    }
    if (!message)
        goto done;
    *message_out = message;
    message = NULL;
    *next = pos;
    status = TX_OK;
    goto done;

bad_utf8:
    PyErr_Clear();
none:
    status = TX_FALLBACK;
done:
    Py_XDECREF(ctag);
    Py_XDECREF(exchange);
    Py_XDECREF(rkey);
    Py_XDECREF(body);
    Py_XDECREF(props);
    Py_XDECREF(message);
    return status;
}

/* take_delivery's work on bufobj: (message, offset after it), None, or NULL raised. */
static PyObject *take_delivery_at(PyObject *bufobj, Py_ssize_t start, Py_ssize_t end,
                                   long channel_id, Py_ssize_t frame_max, PyObject *cls,
                                   PyObject *channel_obj)
{
    bufref r;
    if (get_buffer(bufobj, &r) < 0)
        return NULL;
    PyObject *message = NULL;
    Py_ssize_t pos = 0;
    int status = decode_delivery(bufobj, r.view.buf, r.view.len, start, end, channel_id,
                                 frame_max, cls, channel_obj, &message, &pos);
    release_buffer(&r);
    if (status == TX_ERROR)
        return NULL;
    if (status == TX_FALLBACK)
        Py_RETURN_NONE;
    PyObject *p = PyLong_FromSsize_t(pos);
    PyObject *result = p ? PyTuple_Pack(2, message, p) : NULL;
    Py_XDECREF(p);
    Py_DECREF(message);
    return result;
}

/* ---------------------------------------------------------------- publishing */

/* The frames of one message after its method frame's header: the method payload and
 * its end octet, the content header (class 60, weight 0, body size, properties) and
 * the body split into frames of at most frame_max - 8 octets, in one bytes object.
 * ``head`` is the whole method frame without its end octet (encode_message) or, with
 * ``method_header``, only its payload (encode_content): the 7-octet frame header is
 * written here. Returns TX_FALLBACK (no exception set) for anything the Python
 * function must answer: a properties object that is not exactly BasicProperties, a
 * body that is not bytes, a channel or frame_max out of the range the frames can
 * carry, properties that do not fit in a frame (Python raises the ValueError). */
static int build_message(PyObject *head, int method_header, PyObject *channel_obj,
                         PyObject *body, PyObject *properties, PyObject *frame_max_obj,
                         PyObject **out)
{
    if (!PyBytes_CheckExact(head) || !PyBytes_CheckExact(body) || !PyLong_CheckExact(channel_obj)
        || !PyLong_CheckExact(frame_max_obj))
        return TX_FALLBACK;
    long channel_id = PyLong_AsLong(channel_obj);
    long long frame_max = PyLong_AsLongLong(frame_max_obj);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return TX_FALLBACK;
    }
    if (channel_id < 0 || channel_id > 0xFFFF || frame_max > 0xFFFFFFFFLL)
        return TX_FALLBACK;
    PyObject *props = NULL;
    if (properties == Py_None) {
        /* no properties: flags 0 */
    } else if (props_type != NULL && Py_TYPE(properties) == props_type) {
        props = tx_encode_properties(properties, NULL);
        if (!props)
            return TX_ERROR;
        if (!PyBytes_CheckExact(props)) {
            Py_DECREF(props);
            return TX_FALLBACK;
        }
    } else {
        return TX_FALLBACK;
    }
    Py_ssize_t props_len = props ? PyBytes_GET_SIZE(props) : 2;
    Py_ssize_t head_len = PyBytes_GET_SIZE(head);
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    long long header_payload = 12 + (long long)props_len;
    if (header_payload + 8 > frame_max || (method_header && head_len > 0xFFFFFFFFLL)) {
        Py_XDECREF(props);
        return TX_FALLBACK; /* Python raises the error */
    }
    Py_ssize_t room = (Py_ssize_t)(frame_max - 8);
    Py_ssize_t chunks = size ? (size + room - 1) / room : 0;
    Py_ssize_t total = (method_header ? 7 : 0) + head_len + 20 + props_len + 8 * chunks + size + 1;
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (!result) {
        Py_XDECREF(props);
        return TX_ERROR;
    }
    char *p = PyBytes_AS_STRING(result);
    unsigned char ch_hi = (unsigned char)(channel_id >> 8), ch_lo = (unsigned char)channel_id;
    if (method_header) {
        p[0] = 1; /* FRAME_METHOD */
        p[1] = (char)ch_hi;
        p[2] = (char)ch_lo;
        put32(p + 3, (uint32_t)head_len);
        p += 7;
    }
    memcpy(p, PyBytes_AS_STRING(head), (size_t)head_len);
    p += head_len;
    p[0] = (char)0xCE;
    p[1] = 2; /* FRAME_HEADER */
    p[2] = (char)ch_hi;
    p[3] = (char)ch_lo;
    put32(p + 4, (uint32_t)header_payload);
    p[8] = 0;
    p[9] = 60; /* class basic */
    p[10] = 0;
    p[11] = 0; /* weight */
    put64(p + 12, (uint64_t)size);
    p += 20;
    if (props) {
        memcpy(p, PyBytes_AS_STRING(props), (size_t)props_len);
        Py_DECREF(props);
    } else {
        p[0] = 0;
        p[1] = 0;
    }
    p += props_len;
    const char *src = PyBytes_AS_STRING(body);
    for (Py_ssize_t at = 0; at < size; at += room) {
        Py_ssize_t n = size - at < room ? size - at : room;
        p[0] = (char)0xCE;
        p[1] = 3; /* FRAME_BODY */
        p[2] = (char)ch_hi;
        p[3] = (char)ch_lo;
        put32(p + 4, (uint32_t)n);
        memcpy(p + 8, src + at, (size_t)n);
        p += 8 + n;
    }
    p[0] = (char)0xCE;
    *out = result;
    return TX_OK;
}

static PyObject *message_fallback(PyObject *fn, PyObject *const *args)
{
    if (!fn) {
        PyErr_SetString(PyExc_RuntimeError, "frames.py has not set the message encoder fallbacks");
        return NULL;
    }
    return PyObject_Vectorcall(fn, args, 5, NULL);
}

/* encode_message(head, channel_id, body, properties, frame_max) -> bytes */
static PyObject *tx_encode_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_message(head, channel_id, body, properties, frame_max)");
        return NULL;
    }
    PyObject *out = NULL;
    int rc = build_message(args[0], 0, args[1], args[2], args[3], args[4], &out);
    if (rc == TX_OK)
        return out;
    if (rc == TX_ERROR)
        return NULL;
    return message_fallback(py_encode_message, args);
}

/* encode_content(channel_id, method_payload, body, properties, frame_max) -> bytes */
static PyObject *tx_encode_content(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_content(channel_id, method_payload, body, properties, frame_max)");
        return NULL;
    }
    PyObject *out = NULL;
    int rc = build_message(args[1], 1, args[0], args[2], args[3], args[4], &out);
    if (rc == TX_OK)
        return out;
    if (rc == TX_ERROR)
        return NULL;
    return message_fallback(py_encode_content, args);
}

/* set_message_fallbacks(encode_message, encode_content): the pure-Python encoders,
 * for frames.py. */
static PyObject *tx_set_message_fallbacks(PyObject *self, PyObject *args)
{
    PyObject *msg, *content;
    if (!PyArg_ParseTuple(args, "OO", &msg, &content))
        return NULL;
    Py_INCREF(msg);
    Py_XSETREF(py_encode_message, msg);
    Py_INCREF(content);
    Py_XSETREF(py_encode_content, content);
    Py_RETURN_NONE;
}


/* ---------------------------------------------------------------- Channel.publish */

/* core.channel.Channel's slots that publish reads, in this order (install_publish). */
enum { CH_STATE, CH_HOST, CH_CACHE, CH_QUEUE, CH_OUT, CH_ID, CH_SEQ, CH_SLOTS };
static Py_ssize_t ch_offsets[CH_SLOTS];
static PyTypeObject *channel_type = NULL;
static PyObject *py_channel_publish = NULL;  /* Channel.publish (pure) */
static PyObject *channel_open = NULL;        /* ChannelState.OPEN */
static PyObject *connection_open = NULL;     /* ConnectionState.OPEN */
static PyObject *str_state = NULL, *str_frame_max = NULL;

static inline PyObject *ch_slot(PyObject *self, int i)
{
    return *slot_at(self, ch_offsets[i]);  /* borrowed; NULL if unset */
}

/* core.connection.Connection's slots that the publishes read, in this order
 * (install_connection_layout): one load each instead of an attribute lookup. Until it
 * is installed, or for a host of another class, they are looked up by name. */
enum { CC_STATE, CC_FRAME_MAX, CC_IS_BLOCKED, CC_SLOTS };
static Py_ssize_t cc_offsets[CC_SLOTS];
static PyTypeObject *core_connection_type = NULL;

/* conn.<slot i> as a new reference, or NULL with no exception set when it is unset or
 * the lookup raises (the caller then falls back to Python). */
static inline PyObject *cc_get(PyObject *conn, int i, PyObject *name)
{
    if (core_connection_type != NULL && PyObject_TypeCheck(conn, core_connection_type)) {
        PyObject *value = *slot_at(conn, cc_offsets[i]);
        Py_XINCREF(value);
        return value;
    }
    PyObject *value = name ? PyObject_GetAttr(conn, name) : NULL;
    if (!value)
        PyErr_Clear();
    return value;
}

/* Channel.publish(exchange, routing_key, body, properties=None, mandatory=False,
 * immediate=False) -> int: what the Python method does for its common case, an
 * OPEN channel on an OPEN connection with nothing queued, whose publish method frame
 * is already cached, the message encoded by build_message. Everything else (other
 * states and their errors, keywords, a cache miss, what build_message leaves to
 * Python) is the Python method's, called with the same arguments, before anything
 * changed. */
static PyObject *call_python_method(PyObject *fn, const char *installer, PyObject *ch,
                                    PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

/* The last publish's method frame head, found in a channel's cache (its _publish_cache
 * dict, keyed by (exchange, routing_key, mandatory, immediate)) and the exact objects it
 * was found for: a publisher sends to the same exchange and routing key, as the same
 * string objects, again and again, and comparing five pointers costs less than
 * building the key tuple and looking it up (~600 instructions a publish). Only what
 * the channel's cache held is remembered, so the Python method has validated it; the
 * cache dict itself is part of the key (a head is per channel: it holds the channel
 * id), and its reference keeps it and the strings alive, so no other object can come
 * to have the same address while remembered. Clearing the cache leaves the head right
 * for that channel. */
static struct {
    PyObject *cache, *exchange, *routing_key, *mandatory, *immediate, *method;
} last_publish;

static void remember_publish(PyObject *cache, PyObject *exchange, PyObject *routing_key,
                             PyObject *mandatory, PyObject *immediate, PyObject *method)
{
    Py_INCREF(cache);
    Py_INCREF(exchange);
    Py_INCREF(routing_key);
    Py_INCREF(mandatory);
    Py_INCREF(immediate);
    Py_INCREF(method);
    /* Set all before releasing any: a release may run a destructor (and Python code). */
    PyObject *old[6] = {last_publish.cache, last_publish.exchange, last_publish.routing_key,
                        last_publish.mandatory, last_publish.immediate, last_publish.method};
    last_publish.cache = cache;
    last_publish.exchange = exchange;
    last_publish.routing_key = routing_key;
    last_publish.mandatory = mandatory;
    last_publish.immediate = immediate;
    last_publish.method = method;
    for (int i = 0; i < 6; i++)
        Py_XDECREF(old[i]);
}

static PyObject *tx_channel_publish(PyObject *ch, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *out = NULL, *host_state = NULL, *frame_max = NULL, *key = NULL;
    if (kwnames != NULL || nargs < 3 || nargs > 6 || channel_type == NULL)
        goto fallback;
    PyObject *properties = nargs > 3 ? args[3] : Py_None;
    PyObject *mandatory = nargs > 4 ? args[4] : Py_False;
    PyObject *immediate = nargs > 5 ? args[5] : Py_False;
    if (!PyBool_Check(mandatory) || !PyBool_Check(immediate))
        goto fallback;
    PyObject *state = ch_slot(ch, CH_STATE), *host = ch_slot(ch, CH_HOST);
    PyObject *cache = ch_slot(ch, CH_CACHE), *queue = ch_slot(ch, CH_QUEUE);
    PyObject *outlist = ch_slot(ch, CH_OUT), *channel_id = ch_slot(ch, CH_ID);
    PyObject *seq = ch_slot(ch, CH_SEQ);
    if (state != channel_open || !host || !cache || !PyDict_CheckExact(cache) || !queue
        || !outlist || !PyList_CheckExact(outlist) || !channel_id || !seq
        || !PyLong_CheckExact(seq))
        goto fallback;
    Py_ssize_t queued = PyObject_Length(queue);
    if (queued != 0) {
        if (queued < 0)
            PyErr_Clear();
        goto fallback;
    }
    host_state = cc_get(host, CC_STATE, str_state);
    if (!host_state)
        goto fallback;
    if (host_state != connection_open)
        goto fallback;
    PyObject *method;
    if (cache == last_publish.cache && args[0] == last_publish.exchange
        && args[1] == last_publish.routing_key && mandatory == last_publish.mandatory
        && immediate == last_publish.immediate) {
        method = Py_NewRef(last_publish.method);
    } else {
        key = PyTuple_Pack(4, args[0], args[1], mandatory, immediate);
        if (!key)
            return NULL;
        method = PyDict_GetItemWithError(cache, key);  /* borrowed */
        if (!method) {
            if (PyErr_Occurred())
                PyErr_Clear();
            goto fallback;
        }
        Py_INCREF(method);
        if (PyUnicode_CheckExact(args[0]) && PyUnicode_CheckExact(args[1]))
            remember_publish(cache, args[0], args[1], mandatory, immediate, method);
    }
    frame_max = cc_get(host, CC_FRAME_MAX, str_frame_max);
    if (!frame_max) {
        Py_DECREF(method);
        goto fallback;
    }
    int rc = build_message(method, 0, channel_id, args[2], properties, frame_max, &out);
    Py_DECREF(method);
    if (rc == TX_ERROR)
        goto error;
    if (rc == TX_FALLBACK)
        goto fallback;
    if (PyList_Append(outlist, out) < 0)
        goto error;
    Py_DECREF(out);
    Py_XDECREF(key);  /* NULL when the last publish's head was taken */
    Py_DECREF(host_state);
    Py_DECREF(frame_max);
    Py_INCREF(seq);
    long long number = PyLong_AsLongLong(seq);
    if (number == -1 && PyErr_Occurred()) {
        Py_DECREF(seq);
        return NULL;
    }
    if (number) {  /* confirm mode: the next publish's number */
        PyObject *next = PyLong_FromLongLong(number + 1);
        if (!next) {
            Py_DECREF(seq);
            return NULL;
        }
        slot_put(ch, ch_offsets[CH_SEQ], next);
    }
    return seq;
error:
    Py_XDECREF(out);
    Py_XDECREF(key);
    Py_XDECREF(host_state);
    Py_XDECREF(frame_max);
    return NULL;
fallback:
    Py_XDECREF(out);
    Py_XDECREF(key);
    Py_XDECREF(host_state);
    Py_XDECREF(frame_max);
    return call_python_method(py_channel_publish, "install_publish", ch, args, nargs, kwnames);
}

/* fn(ch, *args, **kwargs) with the caller's vectorcall arguments: the Python method a
 * C method stands in for (fn, kept by `installer`), called for what the C code leaves
 * to it, so that its results and errors are the reference. */
static PyObject *call_python_method(PyObject *fn, const char *installer, PyObject *ch,
                                    PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (fn == NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s has not been called", installer);
        return NULL;
    }
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *stack[16];
    if (total + 1 <= 16) {
        stack[0] = ch;
        for (Py_ssize_t i = 0; i < total; i++)
            stack[i + 1] = args[i];
        return PyObject_Vectorcall(fn, stack, (size_t)(nargs + 1), kwnames);
    }
    /* More arguments than the method takes: Python raises the TypeError. */
    PyObject *tuple = PyTuple_New(nargs + 1);
    PyObject *kwargs = kwnames ? PyDict_New() : NULL;
    PyObject *result = NULL;
    if (!tuple || (kwnames && !kwargs))
        goto done;
    Py_INCREF(ch);
    PyTuple_SET_ITEM(tuple, 0, ch);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i + 1, args[i]);
    }
    for (Py_ssize_t i = nargs; i < total; i++)
        if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i - nargs), args[i]) < 0)
            goto done;
    result = PyObject_Call(fn, tuple, kwargs);
done:
    Py_XDECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

/* install_publish(channel_class, slot_descriptors, channel_open, connection_open) ->
 * the C publish, a method descriptor of channel_class, for the class to take; the
 * class's publish (a Python function) is kept for fallbacks. */
static PyObject *tx_install_publish(PyObject *self, PyObject *args)
{
    PyObject *cls, *descrs, *ch_open, *conn_open;
    if (!PyArg_ParseTuple(args, "O!O!OO", &PyType_Type, &cls, &PyTuple_Type, &descrs, &ch_open,
                          &conn_open))
        return NULL;
    Py_ssize_t offsets[CH_SLOTS];
    if (layout_offsets(descrs, CH_SLOTS, offsets, "channel") < 0)
        return NULL;
    PyObject *pure = PyObject_GetAttrString(cls, "publish");
    if (!pure)
        return NULL;
    if (!PyFunction_Check(pure)) {
        Py_DECREF(pure);
        PyErr_SetString(PyExc_TypeError, "Channel.publish is expected to be a Python function");
        return NULL;
    }
    if (!str_state && !(str_state = PyUnicode_InternFromString("state"))) {
        Py_DECREF(pure);
        return NULL;
    }
    if (!str_frame_max && !(str_frame_max = PyUnicode_InternFromString("frame_max"))) {
        Py_DECREF(pure);
        return NULL;
    }
    static PyMethodDef publish_def = {
        "publish", (PyCFunction)(void (*)(void))tx_channel_publish,
        METH_FASTCALL | METH_KEYWORDS,
        "Queue Basic.Publish with its content; return its confirm sequence number "
        "(C accelerator)."};
    PyObject *func = PyDescr_NewMethod((PyTypeObject *)cls, &publish_def);
    if (!func) {
        Py_DECREF(pure);
        return NULL;
    }
    memcpy(ch_offsets, offsets, sizeof(offsets));
    Py_INCREF(cls);
    Py_XSETREF(channel_type, (PyTypeObject *)cls);
    Py_XSETREF(py_channel_publish, pure);
    Py_INCREF(ch_open);
    Py_XSETREF(channel_open, ch_open);
    Py_INCREF(conn_open);
    Py_XSETREF(connection_open, conn_open);
    return func;
}

/* ---------------------------------------------------------------- Channel.send_ack */

static PyObject *py_channel_send_ack = NULL;  /* Channel.send_ack (pure) */

/* Channel.send_ack(delivery_tag, multiple=False) -> bool: a consumer's every ack. The
 * Python method's checks (an OPEN channel on an OPEN connection, nothing queued) on the
 * slots publish reads, and the 21-byte Basic.Ack frame written here, not packed by a
 * struct call: the pure method's frame and its pack call cost more than the rest of an
 * ack. A tag that is not an int of 0..2**64-1, a multiple that is not a bool, keywords
 * or an unusual channel id go to the Python method, whose errors are the reference. */
static PyObject *tx_channel_send_ack(PyObject *ch, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames)
{
    if (kwnames != NULL || nargs < 1 || nargs > 2 || channel_type == NULL)
        goto fallback;
    PyObject *tag = args[0], *multiple = nargs > 1 ? args[1] : Py_False;
    if (!PyLong_CheckExact(tag) || !PyBool_Check(multiple))
        goto fallback;
    unsigned long long delivery_tag = PyLong_AsUnsignedLongLong(tag);
    if (delivery_tag == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();  /* negative or too big: struct's error, from the Python method */
        goto fallback;
    }
    PyObject *state = ch_slot(ch, CH_STATE), *host = ch_slot(ch, CH_HOST);
    PyObject *queue = ch_slot(ch, CH_QUEUE), *outlist = ch_slot(ch, CH_OUT);
    PyObject *channel_id = ch_slot(ch, CH_ID);
    if (!host || !queue || !outlist || !PyList_CheckExact(outlist) || !channel_id
        || !PyLong_CheckExact(channel_id))
        goto fallback;
    if (state != channel_open)
        Py_RETURN_FALSE;
    Py_ssize_t queued = PyObject_Length(queue);
    if (queued != 0) {
        if (queued < 0)
            PyErr_Clear();
        goto fallback;  /* something waits ahead of the ack: the Python method says so */
    }
    PyObject *host_state = cc_get(host, CC_STATE, str_state);
    if (!host_state)
        goto fallback;
    int host_open = host_state == connection_open;
    Py_DECREF(host_state);
    if (!host_open)
        Py_RETURN_FALSE;
    long cid = PyLong_AsLong(channel_id);
    if (cid < 0 || cid > 0xFFFF) {
        PyErr_Clear();
        goto fallback;
    }
    PyObject *frame = PyBytes_FromStringAndSize(NULL, 21);
    if (!frame)
        return NULL;
    unsigned char *b = (unsigned char *)PyBytes_AS_STRING(frame);
    /* type 1 (method), channel, size 13, class 60 (basic), method 80 (ack), the tag,
     * the multiple bit, frame end */
    b[0] = 1;
    b[1] = (unsigned char)(cid >> 8);
    b[2] = (unsigned char)cid;
    b[3] = b[4] = b[5] = 0;
    b[6] = 13;
    b[7] = 0;
    b[8] = 60;
    b[9] = 0;
    b[10] = 80;
    for (int i = 0; i < 8; i++)
        b[11 + i] = (unsigned char)(delivery_tag >> (56 - 8 * i));
    b[19] = multiple == Py_True;
    b[20] = 0xCE;
    int appended = PyList_Append(outlist, frame);
    Py_DECREF(frame);
    if (appended < 0)
        return NULL;
    Py_RETURN_TRUE;
fallback:
    return call_python_method(py_channel_send_ack, "install_send_ack", ch, args, nargs, kwnames);
}

/* install_send_ack(channel_class) -> the C send_ack, a method descriptor of
 * channel_class (after install_publish, whose slots it reads), for the class to take;
 * the class's send_ack (a Python function) is kept for fallbacks. */
static PyObject *tx_install_send_ack(PyObject *self, PyObject *cls)
{
    if (!PyType_Check(cls) || (PyTypeObject *)cls != channel_type) {
        PyErr_SetString(PyExc_TypeError, "install_send_ack: install_publish's channel class");
        return NULL;
    }
    PyObject *pure = PyObject_GetAttrString(cls, "send_ack");
    if (!pure)
        return NULL;
    if (!PyFunction_Check(pure)) {
        Py_DECREF(pure);
        PyErr_SetString(PyExc_TypeError, "Channel.send_ack is expected to be a Python function");
        return NULL;
    }
    static PyMethodDef send_ack_def = {
        "send_ack", (PyCFunction)(void (*)(void))tx_channel_send_ack,
        METH_FASTCALL | METH_KEYWORDS,
        "Basic.Ack straight into the output; False when the channel cannot send it now "
        "(C accelerator)."};
    PyObject *func = PyDescr_NewMethod((PyTypeObject *)cls, &send_ack_def);
    if (!func) {
        Py_DECREF(pure);
        return NULL;
    }
    Py_XSETREF(py_channel_send_ack, pure);
    return func;
}

/* ---------------------------------------------------------------- install */

static PyMethodDef decode_properties_def = {
    "decode", (PyCFunction)(void (*)(void))tx_decode_properties, METH_FASTCALL,
    "Read property flags and values from ``buf[offset:end]`` (C accelerator)."};

/* ---------------------------------------------------------------- publish fast accept */

/* plain_properties(p) -> bool
 *
 * True when validation.properties(p) certainly accepts p without looking: p is
 * exactly BasicProperties and every field its instance sets is None, a str of at most
 * 63 characters (at most 252 UTF-8 bytes: a valid shortstr), or a delivery_mode of
 * int 1 or 2 - with no headers, priority or timestamp. False means "check it in
 * full", never "invalid". Unset fields read as the class's own, so only while those
 * are all None (props_class_fields_none, as the encode's one pass asks). Reads the
 * instance dict once instead of fourteen attribute lookups. */
static PyObject *tx_plain_properties(PyObject *self, PyObject *p)
{
    if (props_type == NULL || Py_TYPE(p) != props_type || !props_class_fields_none())
        Py_RETURN_FALSE;
    PyObject *dict = PyObject_GenericGetDict(p, NULL);
    if (!dict) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int plain = 1;
    while (plain && PyDict_Next(dict, &pos, &k, &v)) {
        if (v == Py_None)
            continue;
        int i = prop_index(k);
        if (i < 0) {
            /* Not interned: compare by value (a field set through setattr or __dict__). */
            if (!PyUnicode_Check(k))
                continue;
            for (i = 0; i < TX_PROP_COUNT; i++) {
                int eq = PyUnicode_Compare(k, prop_names[i]);
                if (eq == 0)
                    break;
                if (eq == -1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    plain = 0;
                    break;
                }
            }
            if (!plain || i == TX_PROP_COUNT)
                continue;  /* not a field: validation does not look at it */
        }
        switch (TX_PROPS[i].kind) {
        case TX_SHORTSTR:
            plain = PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) <= 63;
            break;
        case TX_OCTET:
            if (TX_PROPS[i].flag == 0x1000 && PyLong_CheckExact(v)) {  /* delivery_mode */
                long x = PyLong_AsLong(v);
                if (x == -1 && PyErr_Occurred())
                    PyErr_Clear();
                plain = x == 1 || x == 2;
            } else {
                plain = 0;
            }
            break;
        default:
            plain = 0;
        }
    }
    Py_DECREF(dict);
    return PyBool_FromLong(plain);
}

/* ---------------------------------------------------------------- ChannelBase.basic_publish */

/* The attribute names the C code looks up by name: client_publish (on the channel's
 * connection, its core and the runtime), the waiters (Deferred's own), and the
 * included await, try_resolve, flush, ack and settle_all; basic_publish's keyword
 * names; interned once by intern_attrs(). A_HELD is both the connection's held
 * publishes and the runtime's held waiters. */
enum {
    A_HELD, A_WRITE_PAUSED, A_CORE, A_IS_BLOCKED, A_SEND_FIRST, A_RECEIVING, A_FLUSH_SCHEDULED,
    A_UNFLUSHED, A_FLUSH_THRESHOLD, A_FLUSH, A_PUBLISHED, A_SUCCEEDED, A_FAILED, A_PUBLISH,
    A_INIT, A_DEBUG, A_CALLBACKS, A_CANCELLER, A_CALLED, A_RESULT, A_PAUSED, A_RUNNING,
    A_RUN_CALLBACKS, A_DEFERRED, A_CALLBACK, A_WAITING_ON, A_FAST_RESUMPTION, A_APPEND, A_OUT,
    A_HEARTBEAT, A_SENT, A_ENDED, A_RUNTIME, A_WRITE, A_JOIN, A_DATA_TO_SEND,
    /* basic_publish's parameters after self, in their order (publish_parameter) */
    A_EXCHANGE, A_ROUTING_KEY, A_BODY, A_PROPERTIES, A_MANDATORY,
    /* Message.ack's (_speedups_ack.h) and asyncio Future's (_speedups_settle.h) */
    A_ACK, A_SEND_ACK, A_SCHEDULE_FLUSH, A_IN_LOOP_THREAD, A_DONE, A_REMOVE_DONE_CALLBACK,
    A_SET_RESULT, A_COUNT
};
static const char *const attr_names[A_COUNT] = {
    "_held", "_write_paused", "_core", "is_blocked", "_send_first", "_receiving",
    "_flush_scheduled", "_unflushed", "flush_threshold", "_flush", "_published", "succeeded",
    "failed", "publish", "__init__", "debug", "_callbacks", "_canceller", "called", "result",
    "paused", "_runningCallbacks", "_runCallbacks", "deferred", "callback", "waitingOn",
    "FAST_RESUMPTION", "append", "_out", "_heartbeat", "_sent", "_ended", "_runtime", "write",
    "join", "data_to_send", "exchange", "routing_key", "body", "properties", "mandatory",
    "_ack", "send_ack", "_schedule_flush", "in_loop_thread", "done", "remove_done_callback",
    "set_result"};
/* The references client_publish holds while it runs: R_CONN_CORE is the connection's
 * core (core.connection.Connection, for its is_blocked), R_CHANNEL_CORE the channel's
 * (core.channel.Channel, which publishes). */
enum { R_CONN, R_HELD, R_WRITE_PAUSED, R_CONN_CORE, R_IS_BLOCKED, R_CHANNEL_CORE, R_RUNTIME,
       R_UNCONFIRMED, R_NEW_WAITER, R_COUNT };
static PyObject *attr[A_COUNT];

/* attr[], for every installer that needs it (whichever runs first): 0, or -1 raised. */
static int intern_attrs(void)
{
    for (int i = 0; i < A_COUNT; i++)
        if (!attr[i] && !(attr[i] = PyUnicode_InternFromString(attr_names[i])))
            return -1;
    return 0;
}

static PyObject *py_client_publish = NULL;  /* ChannelBase.basic_publish (pure) */

/* ChannelBase's slots that client_publish reads, in this order (install_client_publish):
 * one load each instead of an attribute lookup. */
enum { S_CLOSE_ERROR, S_CLOSING, S_MAX_MESSAGE_SIZE, S_MAX_UNCONFIRMED, S_FLOW_ACTIVE, S_FLOW_HELD,
       S_UNCONFIRMED, S_CONN, S_CORE, S_RUNTIME, S_NEW_WAITER, S_SLOTS };
static Py_ssize_t cb_offsets[S_SLOTS];
static PyTypeObject *client_channel_type = NULL;

static inline PyObject *cb_slot(PyObject *self, int i)
{
    return *slot_at(self, cb_offsets[i]);  /* borrowed; NULL if unset */
}

/* client.connection.ConnectionLogic's slots that client_publish reads and sets, in this
 * order (install_client_connection), with the attribute each stands for: a connection
 * of that class is read at fixed offsets, any other by name. */
enum { CL_HELD, CL_WRITE_PAUSED, CL_CORE, CL_SEND_FIRST, CL_RECEIVING, CL_FLUSH_SCHEDULED,
       CL_UNFLUSHED, CL_SLOTS };
static const int cl_attr[CL_SLOTS] = {A_HELD, A_WRITE_PAUSED, A_CORE, A_SEND_FIRST, A_RECEIVING,
                                      A_FLUSH_SCHEDULED, A_UNFLUSHED};
static Py_ssize_t cl_offsets[CL_SLOTS];
static PyTypeObject *client_connection_type = NULL;

/* conn.<slot i> as a new reference; NULL with no exception set when it is unset or the
 * lookup raises (the caller leaves the publish to Python) unless keep_error. */
static inline PyObject *cl_get(PyObject *conn, int fast, int i, int keep_error)
{
    if (fast) {
        PyObject *value = *slot_at(conn, cl_offsets[i]);
        if (!value && keep_error)
            PyErr_SetObject(PyExc_AttributeError, attr[cl_attr[i]]);
        Py_XINCREF(value);
        return value;
    }
    PyObject *value = PyObject_GetAttr(conn, attr[cl_attr[i]]);
    if (!value && !keep_error)
        PyErr_Clear();
    return value;
}

/* conn.<slot i> = value (a new reference is taken) */
static inline int cl_set(PyObject *conn, int fast, int i, PyObject *value)
{
    if (fast) {
        slot_put(conn, cl_offsets[i], Py_NewRef(value));
        return 0;
    }
    return PyObject_SetAttr(conn, attr[cl_attr[i]], value);
}

/* obj.name, or NULL with no exception set when it is missing or raises (the caller
 * then leaves the publish to Python, which reports what is wrong). */
static inline PyObject *get_or_clear(PyObject *obj, int name)
{
    PyObject *value = PyObject_GetAttr(obj, attr[name]);
    if (!value)
        PyErr_Clear();
    return value;
}

/* len(obj) == 0 for a sized object: 1 empty, 0 not (or not sized: no error left set). */
static inline int is_empty(PyObject *obj)
{
    Py_ssize_t n = PyObject_Length(obj);
    if (n < 0) {
        PyErr_Clear();
        return 0;
    }
    return n == 0;
}

/* obj.name(*args) */
static inline PyObject *call_attr(PyObject *obj, int name, PyObject *const *args, size_t nargs)
{
    PyObject *stack[3] = {obj, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    return PyObject_VectorcallMethod(attr[name], stack, nargs + 1, NULL);
}

/* value (a new reference, released here; NULL: raised) is false (1), true (0), or
 * raised (-1): False and True without a truth call. */
static inline int is_false(PyObject *value)
{
    if (!value)
        return -1;
    int truth = value == Py_False ? 0 : value == Py_True ? 1 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth < 0 ? -1 : !truth;
}

/* obj.<name> is False (1), something else (0), or raised (-1). */
static inline int attr_is_false(PyObject *obj, int name)
{
    return is_false(PyObject_GetAttr(obj, attr[name]));
}

/* The exception now set, taken (normalized, with its traceback): a new reference, or
 * NULL if none is set. Python code may run after this, as in an ``except`` block. */
static PyObject *take_raised(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* *slot = value, a reference kept (an installer's: what it was given replaces what an
 * earlier install kept) */
static void keep_ref(PyObject **slot, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
}

/* The waiter class whose instances new_waiter builds without a Python frame (Twisted's
 * LeanDeferred: install_bare_waiter), the __init__ it stands in for (LeanDeferred's),
 * and the base class's __init__ that one calls (Deferred's). A confirmed publish makes
 * one per message; the Python frames cost more than the rest of making it. */
static PyTypeObject *bare_waiter_type = NULL;
static PyObject *bare_waiter_init = NULL;
static PyObject *bare_base_init = NULL;

/* LeanDeferred's slots (twisted._deferred.LEAN_SLOTS, in this order), installed with
 * the class (bare_waiter_type) by install_bare_waiter: on an instance of exactly that
 * class they are read and written at fixed offsets; on any other waiter (a Deferred, a
 * subclass) by name. */
enum { W_CALLBACKS, W_CANCELLER, W_CALLED, W_PAUSED, W_RUNNING, W_RESULT, W_SLOTS };
static const int w_attr[W_SLOTS] = {A_CALLBACKS, A_CANCELLER, A_CALLED, A_PAUSED, A_RUNNING,
                                    A_RESULT};
static Py_ssize_t w_offsets[W_SLOTS];

/* d.<slot i> as a new reference, or NULL with the AttributeError (unset) or what the
 * lookup raised. */
static inline PyObject *w_get(PyObject *d, int i)
{
    if (Py_TYPE(d) == bare_waiter_type) {
        PyObject *value = *slot_at(d, w_offsets[i]);
        if (!value) {
            PyErr_SetObject(PyExc_AttributeError, attr[w_attr[i]]);
            return NULL;
        }
        return Py_NewRef(value);
    }
    return PyObject_GetAttr(d, attr[w_attr[i]]);
}

/* d.<slot i> = value (a new reference is taken): 0, or -1 raised. */
static inline int w_set(PyObject *d, int i, PyObject *value)
{
    if (Py_TYPE(d) == bare_waiter_type) {
        slot_put(d, w_offsets[i], Py_NewRef(value));
        return 0;
    }
    return PyObject_SetAttr(d, attr[w_attr[i]], value);
}

/* d.<slot i> is false (1), true (0), or raised (-1). */
static inline int w_is_false(PyObject *d, int i)
{
    return is_false(w_get(d, i));
}


/* A new instance of the installed class as its __init__ makes it when Deferred
 * debugging is off (its slots: an empty callback list, no canceller, not called, not
 * paused, not running), checked on every call: the class's __init__, its base's and
 * its __new__ are still the ones installed for, and its debug flag is False
 * (setDebugging sets it on Deferred). NULL with no error set when that does not hold
 * (the caller calls the class), with an error set when making it failed. */
static PyObject *bare_new(void)
{
    PyTypeObject *tp = bare_waiter_type;
    if (tp == NULL || tp->tp_new != PyBaseObject_Type.tp_new
        || _PyType_Lookup(tp, attr[A_INIT]) != bare_waiter_init
        || tp->tp_base == NULL || _PyType_Lookup(tp->tp_base, attr[A_INIT]) != bare_base_init
        || _PyType_Lookup(tp, attr[A_DEBUG]) != Py_False)
        return NULL;
    PyObject *waiter = tp->tp_new(tp, empty_tuple, NULL);
    if (!waiter)
        return NULL;
    /* What LeanDeferred.__init__ sets (its slots, see install_bare_waiter). */
    PyObject *callbacks = PyList_New(0);
    if (!callbacks || w_set(waiter, W_CALLED, Py_False) < 0
        || w_set(waiter, W_PAUSED, small_zero) < 0 || w_set(waiter, W_RUNNING, Py_False) < 0
        || w_set(waiter, W_CALLBACKS, callbacks) < 0
        || w_set(waiter, W_CANCELLER, Py_None) < 0) {
        Py_XDECREF(callbacks);
        Py_DECREF(waiter);
        return NULL;
    }
    Py_DECREF(callbacks);
    return waiter;
}

static PyObject *tx_new_bare_waiter(PyObject *self, PyObject *unused);

/* factory(): bare_new() for the installed class (or new_bare_waiter, which stands for
 * it), else the plain call. */
static PyObject *new_waiter(PyObject *factory)
{
    PyTypeObject *tp = bare_waiter_type;
    if (tp != NULL && PyCFunction_Check(factory)
        && PyCFunction_GET_FUNCTION(factory) == (PyCFunction)tx_new_bare_waiter)
        factory = (PyObject *)tp;
    if (factory == (PyObject *)tp) {
        PyObject *waiter = bare_new();
        if (waiter || PyErr_Occurred())
            return waiter;
    }
    return PyObject_CallNoArgs(factory);
}

/* new_bare_waiter(): the installed class's new instance (a getter's waiter: the
 * runtime's waiter_factory) without its __init__'s frame. */
static PyObject *tx_new_bare_waiter(PyObject *self, PyObject *unused)
{
    if (bare_waiter_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install_bare_waiter has not been called");
        return NULL;
    }
    return new_waiter((PyObject *)bare_waiter_type);
}

static PyTypeObject *bare_value_type = NULL;  /* Message: a buffered get()'s value */
static PyObject *succeeded_fallback = NULL;   /* twisted.runtime._succeeded (Python) */

/* bare_succeeded(value): an already fired waiter of the installed class, for None (a
 * publish outside confirm mode) or a message (a buffered get()), as the Python
 * _succeeded makes it without its frame or __init__'s (and in its order: the shared
 * attribute keys); anything else is the Python function's. */
static PyObject *tx_bare_succeeded(PyObject *self, PyObject *value)
{
    if (succeeded_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install_bare_succeeded has not been called");
        return NULL;
    }
    if (value == Py_None || Py_TYPE(value) == bare_value_type) {
        PyObject *waiter = bare_new();
        if (waiter) {
            if (w_set(waiter, W_CALLED, Py_True) < 0 || w_set(waiter, W_RESULT, value) < 0) {
                Py_DECREF(waiter);
                return NULL;
            }
            return waiter;
        }
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_CallOneArg(succeeded_fallback, value);
}

/* install_bare_succeeded(value_class, fallback) */
static PyObject *tx_install_bare_succeeded(PyObject *self, PyObject *args)
{
    PyObject *cls, *fallback;
    if (!PyArg_ParseTuple(args, "O!O", &PyType_Type, &cls, &fallback))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    keep_ref((PyObject **)&bare_value_type, cls);
    keep_ref(&succeeded_fallback, fallback);
    Py_RETURN_NONE;
}

/* install_bare_waiter(waiter_class, init, base_init, slot_descriptors): let
 * client_publish build waiter_class's instances as init (which calls its base class's
 * base_init) does with debugging off (the Python side checked what they set, see
 * _accel.install_bare_waiter), and the waiter code reach its slots (W_CALLBACKS...
 * W_RESULT, in that order) at fixed offsets. */
static PyObject *tx_install_bare_waiter(PyObject *self, PyObject *args)
{
    PyObject *cls, *init, *base_init, *descrs;
    if (!PyArg_ParseTuple(args, "O!OOO!", &PyType_Type, &cls, &init, &base_init, &PyTuple_Type,
                          &descrs))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    if (!small_zero && !(small_zero = PyLong_FromLong(0)))
        return NULL;
    Py_ssize_t found[W_SLOTS];
    if (layout_offsets(descrs, W_SLOTS, found, "waiter") < 0)
        return NULL;
    memcpy(w_offsets, found, sizeof(found));
    keep_ref(&bare_waiter_init, init);
    keep_ref(&bare_base_init, base_init);
    keep_ref((PyObject **)&bare_waiter_type, cls);
    Py_RETURN_NONE;
}

/* client_publish(args) -> waiter, args being the channel, exchange, routing_key, body,
 * properties and mandatory as the C basic_publish (below) bound them.
 *
 * What ChannelBase.basic_publish does for the publishes it accepts without validation
 * (str exchange and routing key of at most 63 characters, a bytes body within
 * max_message_size, no properties or plain_properties ones, mandatory False), on an
 * open channel that holds nothing (flow on, nothing held, room in the confirm window)
 * of a connection whose publish gate is open: the core publish, the flush decision
 * (send-first, a flush already due under the threshold, else conn._published) and the
 * waiter. Everything else calls the Python method with the same arguments before
 * anything changed, so it stays the reference; what the core publish raises fails the
 * waiter, as there. */
static PyObject *client_publish(PyObject *const *args)
{
    PyObject *ch = args[0], *exchange = args[1], *routing_key = args[2], *body = args[3];
    PyObject *properties = args[4];
    /* Owned references, released at done/fallback. */
    PyObject *v[R_COUNT] = {NULL};
    PyObject *result = NULL, *seq = NULL;
    /* ch is a ChannelBase: the method's descriptor checked it before the call. */
    if (!PyUnicode_CheckExact(exchange)
        || !PyUnicode_CheckExact(routing_key) || !PyBytes_CheckExact(body) || args[5] != Py_False
        || PyUnicode_GET_LENGTH(exchange) > 63 || PyUnicode_GET_LENGTH(routing_key) > 63)
        goto fallback;
    if (properties != Py_None) {
        PyObject *plain = tx_plain_properties(NULL, properties);
        if (!plain)
            return NULL;
        Py_DECREF(plain);  /* Py_True or Py_False, compared by identity */
        if (plain != Py_True)
            goto fallback;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    /* self: the size bound, the state, what is held. */
    PyObject *max_size = cb_slot(ch, S_MAX_MESSAGE_SIZE), *window = cb_slot(ch, S_MAX_UNCONFIRMED);
    PyObject *flow_held = cb_slot(ch, S_FLOW_HELD);
    if (!max_size || !PyLong_CheckExact(max_size) || !window || !PyLong_CheckExact(window)
        || !flow_held || !cb_slot(ch, S_UNCONFIRMED) || !cb_slot(ch, S_CONN)
        || !cb_slot(ch, S_CORE) || !cb_slot(ch, S_RUNTIME) || !cb_slot(ch, S_NEW_WAITER))
        goto fallback;
    {
        int overflow = 0;
        long long limit = PyLong_AsLongLongAndOverflow(max_size, &overflow);
        if (overflow < 0 || (!overflow && (long long)size > limit))
            goto fallback;  /* Python raises the ValueError */
    }
    if (cb_slot(ch, S_CLOSE_ERROR) != Py_None || cb_slot(ch, S_CLOSING) != Py_None
        || cb_slot(ch, S_FLOW_ACTIVE) != Py_True || !is_empty(flow_held))
        goto fallback;
    {
        int overflow = 0;
        long long limit = PyLong_AsLongLongAndOverflow(window, &overflow);
        if (overflow)
            goto fallback;
        if (limit) {
            Py_ssize_t pending = PyObject_Length(cb_slot(ch, S_UNCONFIRMED));
            if (pending < 0) {
                PyErr_Clear();
                goto fallback;
            }
            if ((long long)pending >= limit)
                goto fallback;
        }
    }
    /* The connection's publish gate: nothing held, writing not paused, not blocked. */
    v[R_CONN] = Py_NewRef(cb_slot(ch, S_CONN));
    int fast = client_connection_type != NULL
               && PyObject_TypeCheck(v[R_CONN], client_connection_type);
    if (!(v[R_HELD] = cl_get(v[R_CONN], fast, CL_HELD, 0)) || !is_empty(v[R_HELD])
        || !(v[R_WRITE_PAUSED] = cl_get(v[R_CONN], fast, CL_WRITE_PAUSED, 0))
        || v[R_WRITE_PAUSED] != Py_False
        || !(v[R_CONN_CORE] = cl_get(v[R_CONN], fast, CL_CORE, 0))
        || !(v[R_IS_BLOCKED] = cc_get(v[R_CONN_CORE], CC_IS_BLOCKED, attr[A_IS_BLOCKED]))
        || v[R_IS_BLOCKED] != Py_False)
        goto fallback;
    v[R_CHANNEL_CORE] = Py_NewRef(cb_slot(ch, S_CORE));
    v[R_RUNTIME] = Py_NewRef(cb_slot(ch, S_RUNTIME));
    v[R_UNCONFIRMED] = Py_NewRef(cb_slot(ch, S_UNCONFIRMED));
    v[R_NEW_WAITER] = Py_NewRef(cb_slot(ch, S_NEW_WAITER));
    /* From here on the publish is this function's: nothing falls back. */
    {
        PyObject *core = v[R_CHANNEL_CORE];
        PyObject *pargs[6] = {core, exchange, routing_key, body, properties, Py_False};
        if (channel_type != NULL && Py_TYPE(core) == channel_type)  /* its C publish */
            seq = tx_channel_publish(core, pargs + 1, 5, NULL);
        else
            seq = PyObject_VectorcallMethod(attr[A_PUBLISH], pargs, 6, NULL);
    }
    if (!seq) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto done;  /* KeyboardInterrupt and the like go on up, as in Python */
        PyObject *value = take_raised();
        if (!value)
            goto done;
        result = call_attr(v[R_RUNTIME], A_FAILED, &value, 1);
        Py_DECREF(value);
        goto done;
    }
    /* conn._published(size), inline for its two common cases, as basic_publish has it. */
    PyObject *conn = v[R_CONN];
    PyObject *flag = cl_get(conn, fast, CL_SEND_FIRST, 1);
    int truth = flag ? PyObject_IsTrue(flag) : -1;
    Py_XDECREF(flag);
    if (truth < 0)
        goto done;
    if (truth) {
        if (cl_set(conn, fast, CL_SEND_FIRST, Py_False) < 0)
            goto done;
        PyObject *r = call_attr(conn, A_FLUSH, NULL, 0);
        if (!r)
            goto done;
        Py_DECREF(r);
    } else {
        flag = cl_get(conn, fast, CL_RECEIVING, 1);
        truth = flag ? PyObject_IsTrue(flag) : -1;
        Py_XDECREF(flag);
        if (truth == 0) {
            flag = cl_get(conn, fast, CL_FLUSH_SCHEDULED, 1);
            truth = flag ? PyObject_IsTrue(flag) : -1;
            Py_XDECREF(flag);
        }
        if (truth < 0)
            goto done;
        int published = 1;  /* leave it to conn._published(size) */
        if (truth) {
            PyObject *unflushed = cl_get(conn, fast, CL_UNFLUSHED, 1);
            if (!unflushed)
                goto done;
            PyObject *threshold = PyObject_GetAttr(conn, attr[A_FLUSH_THRESHOLD]);
            if (!threshold) {
                Py_DECREF(unflushed);
                goto done;
            }
            int under = -1;
            PyObject *sum = NULL;
            Py_ssize_t extra = size + 64;  /* conn._published's estimate of the frames */
            /* Two small ints (the common case) in C; anything else as Python adds. */
            int over_u = 1, over_t = 1;
            long long u = PyLong_CheckExact(unflushed)
                              ? PyLong_AsLongLongAndOverflow(unflushed, &over_u) : 0;
            long long t = PyLong_CheckExact(threshold)
                              ? PyLong_AsLongLongAndOverflow(threshold, &over_t) : 0;
            if (!over_u && !over_t && u >= 0 && u < ((long long)1 << 60)) {
                long long total = u + (long long)extra;
                under = total < t;
                if (under && !(sum = PyLong_FromLongLong(total)))
                    under = -1;
            } else if (!PyErr_Occurred()) {
                PyObject *added = PyLong_FromSsize_t(extra);
                sum = added ? PyNumber_Add(unflushed, added) : NULL;
                Py_XDECREF(added);
                under = sum ? PyObject_RichCompareBool(sum, threshold, Py_LT) : -1;
            }
            Py_DECREF(unflushed);
            Py_DECREF(threshold);
            if (under > 0)
                under = cl_set(conn, fast, CL_UNFLUSHED, sum) < 0 ? -1 : 1;
            Py_XDECREF(sum);
            if (under < 0)
                goto done;
            published = !under;
        }
        if (published) {
            PyObject *n = PyLong_FromSsize_t(size);
            if (!n)
                goto done;
            PyObject *r = call_attr(conn, A_PUBLISHED, &n, 1);
            Py_DECREF(n);
            if (!r)
                goto done;
            Py_DECREF(r);
        }
    }
    truth = PyObject_IsTrue(seq);
    if (truth < 0)
        goto done;
    if (!truth) {
        PyObject *none = Py_None;
        result = call_attr(v[R_RUNTIME], A_SUCCEEDED, &none, 1);
        goto done;
    }
    {
        PyObject *waiter = new_waiter(v[R_NEW_WAITER]);
        if (!waiter)
            goto done;
        if (PyObject_SetItem(v[R_UNCONFIRMED], seq, waiter) < 0) {
            Py_DECREF(waiter);
            goto done;
        }
        result = waiter;
    }
done:
    Py_XDECREF(seq);
    for (int i = 0; i < R_COUNT; i++)
        Py_XDECREF(v[i]);
    return result;
fallback:
    for (int i = 0; i < R_COUNT; i++)
        Py_XDECREF(v[i]);
    return PyObject_Vectorcall(py_client_publish, args, 6, NULL);
}

/* ChannelBase.basic_publish with the accelerator, a method of the class: its arguments
 * bound as the Python method binds them (exchange, routing_key, body, properties=None,
 * mandatory=False; by position or by name) and handed to client_publish, with no
 * Python frame between the caller and it (one per publish: every RPC half, every
 * publish of a confirm window or a publishing loop). What it cannot bind (too many
 * arguments, an unknown or repeated name, a missing one) goes to the Python method
 * as given, which raises the TypeError Python raises. */
/* The position (1 to 5) in client_publish's arguments of basic_publish's parameter
 * `name`, or 0 for a name it does not have. */
static int publish_parameter(PyObject *name)
{
    for (int i = 0; i < 5; i++)
        if (name == attr[A_EXCHANGE + i])
            return i + 1;
    if (!PyUnicode_Check(name))
        return 0;
    for (int i = 0; i < 5; i++) {
        int eq = PyUnicode_Compare(name, attr[A_EXCHANGE + i]);
        if (eq == 0)
            return i + 1;
        if (eq == -1 && PyErr_Occurred())
            PyErr_Clear();
    }
    return 0;
}

static PyObject *tx_basic_publish(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    PyObject *bound[6] = {self, NULL, NULL, NULL, Py_None, Py_False};
    if (nargs > 5)
        goto fallback;
    for (Py_ssize_t i = 0; i < nargs; i++)
        bound[i + 1] = args[i];
    if (kwnames != NULL) {
        /* Python refuses a name given twice at the call: only one also given by
         * position can reach here, and that one the Python method refuses. */
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            int pos = publish_parameter(PyTuple_GET_ITEM(kwnames, k));
            if (pos <= nargs)  /* not a parameter (0), or given by position too */
                goto fallback;
            bound[pos] = args[nargs + k];
        }
    }
    if (bound[1] == NULL || bound[2] == NULL || bound[3] == NULL)
        goto fallback;
    return client_publish(bound);
fallback:
    return call_python_method(py_client_publish, "install_client_publish", self, args, nargs,
                              kwnames);
}

/* install_client_publish(channel_class, slot_descriptors, basic_publish) -> the C
 * basic_publish, a method of channel_class (ChannelBase) for the caller to put on it:
 * the class whose slots client_publish reads, and its Python basic_publish, which
 * client_publish leaves everything it does not do itself to. The method's doc is the
 * Python one's, after its signature (help(), Sphinx, inspect.signature). */
static PyObject *tx_install_client_publish(PyObject *self, PyObject *args)
{
    PyObject *cls, *descrs, *fn;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyType_Type, &cls, &PyTuple_Type, &descrs, &fn))
        return NULL;
    Py_ssize_t offsets[S_SLOTS];
    if (layout_offsets(descrs, S_SLOTS, offsets, "channel") < 0)
        return NULL;
    if (!PyFunction_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "install_client_publish expects basic_publish");
        return NULL;
    }
    if (intern_attrs() < 0)
        return NULL;
    /* The doc: built once, kept for the life of the process (every descriptor made from
     * publish_def points at it). */
    static PyObject *doc = NULL;
    static PyMethodDef publish_def = {
        "basic_publish", (PyCFunction)(void (*)(void))tx_basic_publish,
        METH_FASTCALL | METH_KEYWORDS, NULL};
    if (doc == NULL) {
        PyObject *text = PyObject_GetAttrString(fn, "__doc__");
        if (!text)
            return NULL;
        if (text == Py_None) {
            Py_DECREF(text);
            text = PyUnicode_FromString("");
            if (!text)
                return NULL;
        }
        PyObject *full = PyUnicode_FromFormat(
            "basic_publish($self, /, exchange, routing_key, body, properties=None, "
            "mandatory=False)\n--\n\n%U",
            text);
        Py_DECREF(text);
        if (!full)
            return NULL;
        doc = PyUnicode_AsUTF8String(full);
        Py_DECREF(full);
        if (!doc)
            return NULL;
        publish_def.ml_doc = PyBytes_AS_STRING(doc);
    }
    PyObject *method = PyDescr_NewMethod((PyTypeObject *)cls, &publish_def);
    if (!method)
        return NULL;
    memcpy(cb_offsets, offsets, sizeof(offsets));
    Py_INCREF(cls);
    Py_XSETREF(client_channel_type, (PyTypeObject *)cls);
    Py_INCREF(fn);
    Py_XSETREF(py_client_publish, fn);
    return method;
}

/* What both connection installers do with their (connection_class, slot_descriptors):
 * the class's n slot offsets into `offsets` and the class into `*type`, both left as
 * they were when the layout is not the expected one. */
#define MAX_CONNECTION_SLOTS 8
static PyObject *install_connection_slots(PyObject *args, Py_ssize_t n, Py_ssize_t *offsets,
                                          PyTypeObject **type)
{
    PyObject *cls, *descrs;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &descrs))
        return NULL;
    Py_ssize_t found[MAX_CONNECTION_SLOTS];
    if (n > MAX_CONNECTION_SLOTS || layout_offsets(descrs, n, found, "connection") < 0)
        return NULL;
    memcpy(offsets, found, (size_t)n * sizeof(Py_ssize_t));
    Py_INCREF(cls);
    Py_XSETREF(*type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

/* install_client_connection(connection_class, slot_descriptors): the class whose slots
 * client_publish reads and sets on the channel's connection (ConnectionLogic); a
 * connection of any other class is read by attribute name. */
static PyObject *tx_install_client_connection(PyObject *self, PyObject *args)
{
    if (intern_attrs() < 0)
        return NULL;
    return install_connection_slots(args, CL_SLOTS, cl_offsets, &client_connection_type);
}

/* install_connection_layout(connection_class, slot_descriptors): the class whose slots
 * (state, frame_max, is_blocked) the publishes read on the core connection. */
static PyObject *tx_install_connection_layout(PyObject *self, PyObject *args)
{
    return install_connection_slots(args, CC_SLOTS, cc_offsets, &core_connection_type);
}

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

/* install_init(properties_class, fields) -> bool: after install(), build the class's
 * instances in C (its tp_init and vectorcall: tx_props_init, tx_props_vectorcall) when
 * `fields` are this module's, in order, its metaclass is type and its __new__ object's;
 * the class's __init__, a Python function that _accel.py has checked takes exactly those
 * keywords, stays in its dict and is called for anything unusual. False (nothing
 * changed) otherwise. Called again after the class's __init__ was reassigned and put
 * back, it installs again. */
static PyObject *tx_install_init(PyObject *self, PyObject *args)
{
    PyObject *cls, *fields;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &cls, &PyTuple_Type, &fields))
        return NULL;
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (tp != props_type || Py_TYPE(cls) != &PyType_Type
        || tp->tp_new != PyBaseObject_Type.tp_new || PyTuple_GET_SIZE(fields) != TX_PROP_COUNT)
        Py_RETURN_FALSE;
    for (int i = 0; i < TX_PROP_COUNT; i++) {
        int eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(fields, i), prop_names[i], Py_EQ);
        if (eq < 0)
            return NULL;
        if (!eq)
            Py_RETURN_FALSE;
    }
    PyObject *init = PyDict_GetItemString(tp->tp_dict, "__init__");  /* borrowed */
    if (!init || !PyFunction_Check(init))
        Py_RETURN_FALSE;
    Py_INCREF(init);
    Py_XSETREF(py_props_init, init);
    props_object_new = tp->tp_new;
    /* Not through type.__setattr__: that would put a descriptor in the class's dict.
     * CPython resets tp_init itself when __init__ is assigned on the class (or a base),
     * which is what tx_props_vectorcall checks; subclasses get the generic tp_init
     * (calling the Python __init__) as before, and never a type's tp_vectorcall. */
    tp->tp_init = tx_props_init;
    tp->tp_vectorcall = tx_props_vectorcall;
    Py_RETURN_TRUE;
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

#include "_speedups_await.h"
#include "_speedups_resume.h"
#include "_speedups_flush.h"
#include "_speedups_acks.h"
#include "_speedups_fire.h"
#include "_speedups_ack.h"
#include "_speedups_settle.h"

static PyMethodDef methods[] = {
    {"decode_table", (PyCFunction)(void (*)(void))tx_decode_table, METH_FASTCALL,
     "decode_table(buf, offset) -> (dict, offset)"},
    {"encode_table", (PyCFunction)tx_encode_table, METH_O, "encode_table(table) -> bytes"},
    {"take_delivery", (PyCFunction)(void (*)(void))tx_take_delivery, METH_FASTCALL,
     "take_delivery(buf, start, end, channel_id, frame_max, delivery_class)"},
    {"take_deliveries", (PyCFunction)(void (*)(void))tx_take_deliveries, METH_FASTCALL,
     "take_deliveries(buf, start, end, channel_id, frame_max, delivery_class, events) -> offset | None"},
    {"take_acks", (PyCFunction)(void (*)(void))tx_take_acks, METH_FASTCALL,
     "take_acks(buf, start, end, channel_id, next_seq, frame_max, event_class, events) "
     "-> offset | None"},
    {"install_acks", tx_install_acks, METH_VARARGS,
     "install_acks(event_class, init, slot_descriptors) -> True"},
    {"take_read", (PyCFunction)(void (*)(void))tx_take_read, METH_FASTCALL,
     "take_read(data, frame_max, max_message_size, delivery_class) -> (channel_id, message) | None"},
    {"encode_message", (PyCFunction)(void (*)(void))tx_encode_message, METH_FASTCALL,
     "encode_message(head, channel_id, body, properties, frame_max) -> bytes"},
    {"encode_content", (PyCFunction)(void (*)(void))tx_encode_content, METH_FASTCALL,
     "encode_content(channel_id, method_payload, body, properties, frame_max) -> bytes"},
    {"set_delivery_layout", tx_set_delivery_layout, METH_VARARGS,
     "set_delivery_layout(cls, field_descriptors, extra_descriptors, extra_defaults) -> bool"},
    {"plain_properties", tx_plain_properties, METH_O,
     "plain_properties(properties) -> bool: validation.properties has nothing to check"},
    {"set_message_fallbacks", tx_set_message_fallbacks, METH_VARARGS,
     "set_message_fallbacks(encode_message, encode_content)"},
    {"install", tx_install, METH_VARARGS,
     "install(properties_class, decode_table, encode_table)"},
    {"install_init", tx_install_init, METH_VARARGS,
     "install_init(properties_class, fields) -> bool"},
    {"install_publish", tx_install_publish, METH_VARARGS,
     "install_publish(channel_class, slot_descriptors, channel_open, connection_open)"},
    {"install_send_ack", tx_install_send_ack, METH_O,
     "install_send_ack(channel_class) -> the C send_ack for channel_class"},
    {"install_client_publish", tx_install_client_publish, METH_VARARGS,
     "install_client_publish(channel_class, slot_descriptors, basic_publish) -> the C basic_publish"},
    {"install_bare_waiter", tx_install_bare_waiter, METH_VARARGS,
     "install_bare_waiter(waiter_class, init, base_init, slot_descriptors)"},
    {"new_bare_waiter", tx_new_bare_waiter, METH_NOARGS,
     "new_bare_waiter() -> a new waiter of the installed class"},
    {"install_bare_succeeded", tx_install_bare_succeeded, METH_VARARGS,
     "install_bare_succeeded(value_class, fallback)"},
    {"bare_succeeded", tx_bare_succeeded, METH_O,
     "bare_succeeded(value) -> a waiter of the installed class, fired with value"},
    {"install_client_connection", tx_install_client_connection, METH_VARARGS,
     "install_client_connection(connection_class, slot_descriptors)"},
    {"install_connection_layout", tx_install_connection_layout, METH_VARARGS,
     "install_connection_layout(connection_class, slot_descriptors)"},
    {"install_deferred_await", tx_install_deferred_await, METH_VARARGS,
     "install_deferred_await(deferred_class, deferred_await, failure_class) -> __await__"},
    {"install_try_resolve", tx_install_try_resolve, METH_VARARGS,
     "install_try_resolve(runtime_class, try_resolve, waiter_class, deferred_class, "
     "message_class, got_result, no_keywords, runtime_globals, resume_yielded, "
     "coroutine_raised, resolve_raised) -> try_resolve"},
    {"fire_each", (PyCFunction)(void (*)(void))tx_fire_each, METH_FASTCALL,
     "fire_each(deferreds, result): d.callback(result) for each one not called yet"},
    {"install_fire_each", tx_install_fire_each, METH_VARARGS,
     "install_fire_each(waiter_class, continue, got_result, passthru, deferred_types, "
     "failure_class, failure_of) -> True"},
    {"install_flush", tx_install_flush, METH_VARARGS,
     "install_flush(connection_class, core_class, data_to_send, heartbeat_frame) -> _flush"},
    {"install_message_ack", tx_install_message_ack, METH_VARARGS,
     "install_message_ack(message_class, slot_descriptors, channel_ack) -> the C ack"},
    {"register_loop_thread", tx_register_loop_thread, METH_VARARGS,
     "register_loop_thread(runtime_class, holder, name, none_is_any)"},
    {"settle_all", (PyCFunction)(void (*)(void))tx_settle_all, METH_FASTCALL,
     "settle_all(waiters, value, calls, queue_calls) -> bool"},
    {"install_settle_all", tx_install_settle_all, METH_O,
     "install_settle_all(future_class) -> bool"},
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

/* A run of publisher acks in C; included once by _speedups.c after the deliveries.
 *
 * A publisher in confirm mode gets its Basic.Ack frames back to back: a live confirm
 * window's reads carried 3 to 13 of them. core.connection._parse spends a loop round,
 * Channel.handle_method, Channel._confirms_sent and a PublishAcked.__init__ frame on
 * each; take_acks makes the same checks for the run that follows on one channel and
 * appends the same events:
 *
 *     each frame: a method frame on this channel of 13 octets (class 60, method 80
 *       and Basic.Ack's 9), its frame-end octet, within frame_max;
 *     its tag one this channel sent (_confirms_sent's test: 0 < tag < next_seq, or 0
 *       with multiple);
 *     -> PublishAcked(channel_id, tag, bool(bits & 1)), stored in its slots while
 *       PublishAcked's __init__ and __new__ are the installed ones, else by calling
 *       the class.
 *
 * It stops at the first frame that is not such an ack (another frame, another
 * channel, a partial frame, a tag never sent) and returns the offset where the frame
 * loop goes on: that frame, whatever is wrong with it, is the loop's to report. None
 * when the first ack is not one (nothing appended). Whether the channel may take an
 * ack (open, no content expected) is the caller's to check. */

static PyTypeObject *acked_type = NULL;   /* core.events.PublishAcked */
static PyObject *acked_init = NULL;       /* its __init__ when installed */
static Py_ssize_t acked_offsets[3];       /* channel_id, delivery_tag, multiple */

/* Whether PublishAcked may be built without calling it: its __init__ (which only
 * stores the three slots) and __new__ are still the installed ones. */
static int acked_bare(void)
{
    return acked_type && acked_type->tp_new == PyBaseObject_Type.tp_new
           && _PyType_Lookup(acked_type, attr[A_INIT]) == acked_init;
}

/* PublishAcked(channel_id, tag, multiple) as a new reference (NULL: raised). */
static PyObject *new_acked(PyObject *cls, int bare, PyObject *channel_id, uint64_t tag,
                           int multiple)
{
    PyObject *tag_obj = PyLong_FromUnsignedLongLong(tag);
    if (!tag_obj)
        return NULL;
    PyObject *flag = multiple ? Py_True : Py_False;
    if (!bare) {
        PyObject *stack[3] = {channel_id, tag_obj, flag};
        PyObject *event = PyObject_Vectorcall(cls, stack, 3, NULL);
        Py_DECREF(tag_obj);
        return event;
    }
    PyObject *event = acked_type->tp_alloc(acked_type, 0);
    if (!event) {
        Py_DECREF(tag_obj);
        return NULL;
    }
    slot_put(event, acked_offsets[0], Py_NewRef(channel_id));
    slot_put(event, acked_offsets[1], tag_obj);
    slot_put(event, acked_offsets[2], Py_NewRef(flag));
    return event;
}

/* Whether the 9 octets of Basic.Ack at p name a publish that was sent (next_seq:
 * the channel's next publish number, 0 outside confirm mode). */
static inline int ack_was_sent(const unsigned char *p, uint64_t next_seq)
{
    uint64_t tag = rd64(p);
    return next_seq && ((0 < tag && tag < next_seq) || (tag == 0 && (p[8] & 1)));
}

/* take_acks(buf, start, end, channel_id, next_seq, frame_max, event_class, events)
 *   -> offset after the last ack taken | None */
static PyObject *tx_take_acks(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyList_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "take_acks(buf, start, end, channel_id, next_seq, "
                                         "frame_max, event_class, events: list)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    long channel_id = PyLong_AsLong(args[3]);
    Py_ssize_t frame_max = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    uint64_t next_seq = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred()) {  /* not a sequence number this compares: the frame loop's */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *cls = args[6], *events = args[7];
    int bare = (PyObject *)acked_type == cls && acked_bare();
    bufref r;
    if (get_buffer(args[0], &r) < 0)
        return NULL;
    const unsigned char *b = r.view.buf;
    Py_ssize_t len = r.view.len;
    if (start < 0 || end != start + 9 || end >= len || !ack_was_sent(b + start, next_seq)) {
        release_buffer(&r);
        Py_RETURN_NONE;
    }
    const unsigned char *p = b + start;
    Py_ssize_t pos = end + 1;
    for (;;) {
        PyObject *event = new_acked(cls, bare, args[3], rd64(p), p[8] & 1);
        if (!event || PyList_Append(events, event) < 0) {
            Py_XDECREF(event);
            release_buffer(&r);
            return NULL;
        }
        Py_DECREF(event);
        /* The next frame: a whole Basic.Ack method frame on this channel? */
        if (len - pos < 21 || 21 > frame_max || b[pos] != 1
            || (long)rd16(b + pos + 1) != channel_id || rd32(b + pos + 3) != 13
            || b[pos + 20] != 0xCE || rd16(b + pos + 7) != 60 || rd16(b + pos + 9) != 80
            || !ack_was_sent(b + pos + 11, next_seq))
            break;
        p = b + pos + 11;
        pos += 21;
    }
    release_buffer(&r);
    return PyLong_FromSsize_t(pos);
}

/* install_acks(event_class, init, slot_descriptors) -> bool: take_acks stores the
 * events of event_class (PublishAcked) in the slots the three member descriptors
 * (channel_id, delivery_tag, multiple) name while its __init__ is init. */
static PyObject *tx_install_acks(PyObject *self, PyObject *args)
{
    PyObject *cls, *init, *descrs;
    if (!PyArg_ParseTuple(args, "O!OO!", &PyType_Type, &cls, &init, &PyTuple_Type, &descrs))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    if (layout_offsets(descrs, 3, acked_offsets, "unexpected PublishAcked layout") < 0)
        return NULL;
    keep_ref((PyObject **)&acked_type, cls);
    keep_ref(&acked_init, init);
    Py_RETURN_TRUE;
}

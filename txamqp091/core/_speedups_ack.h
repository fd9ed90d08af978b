/* Message.ack in C; included once by _speedups.c after client_publish's helpers (cb_slot,
 * cl_get, is_false) and the core Channel's C send_ack (tx_channel_send_ack).
 *
 * A consumer acks every message. In Python that is three frames: Message.ack, the
 * channel's _ack (ChannelLogic._ack, client/channel.py) and the runtime's
 * in_loop_thread, about 1,700 of a consumed message's 15,100 instructions (callgrind,
 * benchmarks/client_path.py consume, Twisted), for a 21-byte frame that the C
 * send_ack writes in a few dozen. This method does what those three do when the ack
 * goes straight into the core's output:
 *
 *     multiple a bool, no keywords; the message's channel a client channel whose _ack
 *     is ChannelLogic._ack (not replaced on its class or on the instance); the message
 *     came on the channel's current core channel; the channel neither closing nor
 *     closed; the caller in the runtime's loop thread; the core's send_ack took it
 *                                             -> the connection's flush scheduled, as
 *        _ack does (not while a read is dispatched, nor when one is due)
 *     anything else                           -> the Python Message.ack (the reference,
 *        message.PURE_MESSAGE_ACK), which raises, defers or settles it otherwise
 *
 * The runtime's loop-thread test is read here where its in_loop_thread is one that
 * registered how (register_loop_thread: Twisted's threadable.ioThread, asyncio's loop
 * thread); another runtime's in_loop_thread() is called. Every check before send_ack is
 * without side effects, so falling back after any of them, or after send_ack said
 * no (it changes nothing then), runs the reference from the start. */

static PyTypeObject *ack_message_type = NULL;  /* Message */
static PyObject *py_message_ack = NULL;        /* Message.ack (pure) */
static PyObject *py_channel_ack = NULL;        /* ChannelLogic._ack (pure) */
/* Message's slots read here: the channel, its core channel, the delivery tag. */
enum { MA_CHANNEL, MA_CORE_CHANNEL, MA_DELIVERY_TAG, MA_SLOTS };
static Py_ssize_t ma_offsets[MA_SLOTS];

/* The function obj.name calls with obj first, when attribute lookup finds a method of
 * obj's class (not shadowed on the instance): a new reference; NULL (no error set)
 * for anything else. */
static PyObject *method_function(PyObject *obj, PyObject *name)
{
    PyObject *found = NULL;
#if PY_VERSION_HEX < 0x030D0000
    /* The type's attribute when it is a method not shadowed: no bound method made. */
    if (_PyObject_GetMethod(obj, name, &found) == 1)
        return found;
    if (!found)
        PyErr_Clear();
    Py_XDECREF(found);
    return NULL;
#else
    found = PyObject_GetAttr(obj, name);
    if (!found) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *function = NULL;
    if (PyMethod_Check(found) && PyMethod_GET_SELF(found) == obj)
        function = Py_NewRef(PyMethod_GET_FUNCTION(found));
    Py_DECREF(found);
    return function;
#endif
}

/* The in_loop_thread functions read here instead of called (register_loop_thread): the
 * thread ident is holder.name (the runtime itself when holder is NULL); None means any
 * thread when none_is_any (Twisted's reactor not running), and no thread otherwise. */
#define MAX_LOOP_THREADS 8
static struct {
    PyObject *function, *holder, *name;
    int none_is_any;
} loop_threads[MAX_LOOP_THREADS];
static int n_loop_threads = 0;

/* runtime.in_loop_thread(): 1, 0, or -1 raised. */
static int runtime_in_loop_thread(PyObject *runtime)
{
    PyObject *function = method_function(runtime, attr[A_IN_LOOP_THREAD]);
    for (int i = 0; function && i < n_loop_threads; i++) {
        if (loop_threads[i].function != function)
            continue;
        PyObject *holder = loop_threads[i].holder ? loop_threads[i].holder : runtime;
        PyObject *ident = PyObject_GetAttr(holder, loop_threads[i].name);
        if (!ident) {
            PyErr_Clear();
            break;  /* the method says what is wrong */
        }
        int result = -2;
        if (ident == Py_None)
            result = loop_threads[i].none_is_any;
        else if (PyLong_CheckExact(ident)) {
            unsigned long value = PyLong_AsUnsignedLong(ident);
            if (value == (unsigned long)-1 && PyErr_Occurred())
                PyErr_Clear();
            else
                result = value == PyThread_get_thread_ident();
        }
        Py_DECREF(ident);
        if (result != -2) {
            Py_DECREF(function);
            return result;
        }
        break;
    }
    Py_XDECREF(function);
    PyObject *answer = PyObject_CallMethodNoArgs(runtime, attr[A_IN_LOOP_THREAD]);
    if (!answer)
        return -1;
    int truth = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    return truth;
}

/* 1 when channel._ack is ChannelLogic._ack, 0 otherwise. */
static int channel_ack_is_pure(PyObject *ch)
{
    PyObject *function = method_function(ch, attr[A_ACK]);
    Py_XDECREF(function);  /* compared by identity only: py_channel_ack keeps it alive */
    return function == py_channel_ack;
}

/* Message.ack(multiple=False) */
static PyObject *tx_message_ack(PyObject *msg, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    if (kwnames != NULL || nargs > 1 || ack_message_type == NULL || client_channel_type == NULL
        || !PyObject_TypeCheck(msg, ack_message_type))
        goto fallback;
    PyObject *multiple = nargs ? args[0] : Py_False;
    if (multiple != Py_False && multiple != Py_True)
        goto fallback;
    PyObject *ch = *slot_at(msg, ma_offsets[MA_CHANNEL]);
    if (!ch || !PyObject_TypeCheck(ch, client_channel_type) || !channel_ack_is_pure(ch))
        goto fallback;
    PyObject *core = cb_slot(ch, S_CORE), *runtime = cb_slot(ch, S_RUNTIME);
    PyObject *conn = cb_slot(ch, S_CONN), *tag = *slot_at(msg, ma_offsets[MA_DELIVERY_TAG]);
    if (!core || !runtime || !conn || !tag || *slot_at(msg, ma_offsets[MA_CORE_CHANNEL]) != core
        || cb_slot(ch, S_CLOSING) != Py_None || cb_slot(ch, S_CLOSE_ERROR) != Py_None)
        goto fallback;
    /* The loop-thread test may run Python code: hold what is used after it. */
    Py_INCREF(ch);
    Py_INCREF(core);
    Py_INCREF(conn);
    Py_INCREF(tag);
    Py_INCREF(runtime);
    PyObject *result = NULL;
    int in_thread = runtime_in_loop_thread(runtime);
    Py_DECREF(runtime);
    if (in_thread < 0)
        goto done;
    if (in_thread == 0)
        goto release_fallback;
    PyObject *sent;
    if (channel_type != NULL && Py_TYPE(core) == channel_type) {
        PyObject *sargs[2] = {tag, multiple};
        sent = tx_channel_send_ack(core, sargs, 2, NULL);
    } else {
        PyObject *stack[3] = {core, tag, multiple};
        sent = PyObject_VectorcallMethod(attr[A_SEND_ACK], stack, 3, NULL);
    }
    int not_sent = is_false(sent);
    if (not_sent < 0)
        goto done;
    if (not_sent)
        goto release_fallback;
    /* _ack's flush guard, then _schedule_flush (whose own guard repeats it). */
    int fast = client_connection_type != NULL && PyObject_TypeCheck(conn, client_connection_type);
    PyObject *flag = cl_get(conn, fast, CL_FLUSH_SCHEDULED, 1);
    int due = flag ? PyObject_IsTrue(flag) : -1;
    Py_XDECREF(flag);
    if (due < 0)
        goto done;
    if (!due) {
        flag = cl_get(conn, fast, CL_RECEIVING, 1);
        int receiving = flag ? PyObject_IsTrue(flag) : -1;
        Py_XDECREF(flag);
        if (receiving < 0)
            goto done;
        if (!receiving) {
            PyObject *scheduled = PyObject_CallMethodNoArgs(conn, attr[A_SCHEDULE_FLUSH]);
            if (!scheduled)
                goto done;
            Py_DECREF(scheduled);
        }
    }
    result = Py_NewRef(Py_None);
done:
    Py_DECREF(ch);
    Py_DECREF(core);
    Py_DECREF(conn);
    Py_DECREF(tag);
    return result;
release_fallback:
    Py_DECREF(ch);
    Py_DECREF(core);
    Py_DECREF(conn);
    Py_DECREF(tag);
fallback:
    return call_python_method(py_message_ack, "install_message_ack", msg, args, nargs, kwnames);
}

/* install_message_ack(message_class, slot_descriptors, channel_ack) -> the C ack, a
 * method descriptor of message_class for the class to take (its ack, a Python
 * function, is kept for fallbacks). slot_descriptors: the class's _channel,
 * _core_channel and delivery_tag; channel_ack: ChannelLogic._ack, which the fast path
 * stands in for. After install_client_publish (the channel's slots) and
 * install_send_ack. */
static PyObject *tx_install_message_ack(PyObject *self, PyObject *args)
{
    PyObject *cls, *descrs, *channel_ack;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyType_Type, &cls, &PyTuple_Type, &descrs,
                          &channel_ack))
        return NULL;
    if (client_channel_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install_client_publish has not been called");
        return NULL;
    }
    if (!PyFunction_Check(channel_ack)) {
        PyErr_SetString(PyExc_TypeError, "install_message_ack expects ChannelLogic._ack");
        return NULL;
    }
    Py_ssize_t offsets[MA_SLOTS];
    if (layout_offsets(descrs, MA_SLOTS, offsets, "message") < 0)
        return NULL;
    PyObject *pure = PyObject_GetAttrString(cls, "ack");
    if (!pure)
        return NULL;
    if (!PyFunction_Check(pure)) {
        Py_DECREF(pure);
        PyErr_SetString(PyExc_TypeError, "Message.ack is expected to be a Python function");
        return NULL;
    }
    if (intern_attrs() < 0) {
        Py_DECREF(pure);
        return NULL;
    }
    static PyMethodDef ack_def = {
        "ack", (PyCFunction)(void (*)(void))tx_message_ack, METH_FASTCALL | METH_KEYWORDS,
        "ack($self, /, multiple=False)\n--\n\n"
        "Acknowledge this message (and, with ``multiple``, every earlier one on its "
        "channel)."};
    PyObject *method = PyDescr_NewMethod((PyTypeObject *)cls, &ack_def);
    if (!method) {
        Py_DECREF(pure);
        return NULL;
    }
    memcpy(ma_offsets, offsets, sizeof(offsets));
    Py_INCREF(cls);
    Py_XSETREF(ack_message_type, (PyTypeObject *)cls);
    Py_XSETREF(py_message_ack, pure);
    keep_ref(&py_channel_ack, channel_ack);
    return method;
}

/* register_loop_thread(in_loop_thread, holder, name, none_is_any): let Message.ack
 * read a runtime's in_loop_thread(), when it is this function, as holder.name ==
 * threading.get_ident() (holder None: the runtime itself), a None ident meaning any
 * thread when none_is_any and none otherwise. What the function returns must be
 * exactly that: the registering module says so. */
static PyObject *tx_register_loop_thread(PyObject *self, PyObject *args)
{
    PyObject *function, *holder, *name;
    int none_is_any;
    if (!PyArg_ParseTuple(args, "OOUp", &function, &holder, &name, &none_is_any))
        return NULL;
    if (!PyFunction_Check(function)) {
        PyErr_SetString(PyExc_TypeError, "register_loop_thread expects a Python function");
        return NULL;
    }
    if (intern_attrs() < 0)
        return NULL;
    int i = 0;
    while (i < n_loop_threads && loop_threads[i].function != function)
        i++;
    if (i == MAX_LOOP_THREADS) {
        PyErr_SetString(PyExc_RuntimeError, "register_loop_thread: too many functions");
        return NULL;
    }
    PyObject *interned = Py_NewRef(name);
    PyUnicode_InternInPlace(&interned);
    if (i == n_loop_threads) {
        loop_threads[i].function = Py_NewRef(function);
        loop_threads[i].holder = NULL;
        loop_threads[i].name = NULL;
        n_loop_threads++;
    }
    Py_XSETREF(loop_threads[i].holder, holder == Py_None ? NULL : Py_NewRef(holder));
    Py_XSETREF(loop_threads[i].name, interned);
    loop_threads[i].none_is_any = none_is_any;
    Py_RETURN_NONE;
}

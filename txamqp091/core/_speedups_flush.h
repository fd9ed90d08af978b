/* ConnectionLogic._flush in C; included once by _speedups.c after client_publish's
 * helpers (cl_get, cl_set, call_attr).
 *
 * Every write of the client goes through _flush: the send-first publish of each RPC
 * half, the end of a read that queued acks or publishes, the scheduled flush of a
 * publishing loop. In Python it is two frames (_flush, then the core's data_to_send);
 * here it is none:
 *
 *     conn._flush_scheduled = False; conn._unflushed = 0
 *     data = conn._core.data_to_send()        inline for the core Connection:
 *         out = core._out; data = out[0] if one frame else b"".join(out); del out[:]
 *         a write that is not a lone heartbeat frame counts as traffic (_heartbeat._sent)
 *     if data and not conn._ended: conn._runtime.write(data)
 *
 * A core of another class, or one whose data_to_send is not the installed one (a
 * subclass's, one set on the instance), is asked by its data_to_send(). The Python _flush (client.connection.PURE_FLUSH) stays
 * the reference: tests/client/test_publish_accelerated.py runs both. */

static PyObject *pure_data_to_send = NULL;   /* core Connection.data_to_send (Python) */
static PyTypeObject *flush_core_type = NULL; /* core.connection.Connection */
static PyObject *heartbeat_frame = NULL;     /* frames.HEARTBEAT_FRAME */
static PyObject *empty_bytes = NULL;

/* core.data_to_send() as a new reference (NULL: raised): inline when it is the
 * installed method, bound to this core (not another class's, nor one set on the
 * instance); else called. */
static PyObject *core_data_to_send(PyObject *core)
{
    PyObject *method = PyObject_GetAttr(core, attr[A_DATA_TO_SEND]);
    if (!method)
        return NULL;
    if (Py_TYPE(core) != flush_core_type || !PyMethod_Check(method)
        || PyMethod_GET_FUNCTION(method) != pure_data_to_send
        || PyMethod_GET_SELF(method) != core) {
        PyObject *data = PyObject_CallNoArgs(method);
        Py_DECREF(method);
        return data;
    }
    PyObject *out = PyObject_GetAttr(core, attr[A_OUT]);
    if (!out || !PyList_CheckExact(out)) {
        Py_XDECREF(out);
        PyObject *data = out ? PyObject_CallNoArgs(method) : NULL;
        Py_DECREF(method);
        return data;
    }
    Py_DECREF(method);
    Py_ssize_t n = PyList_GET_SIZE(out);
    if (n == 0) {
        Py_DECREF(out);
        return Py_NewRef(empty_bytes);
    }
    PyObject *data = n == 1 ? Py_NewRef(PyList_GET_ITEM(out, 0))
                            : PyObject_CallMethodOneArg(empty_bytes, attr[A_JOIN], out);
    if (!data || PyList_SetSlice(out, 0, PyList_GET_SIZE(out), NULL) < 0) {
        Py_XDECREF(data);
        Py_DECREF(out);
        return NULL;
    }
    Py_DECREF(out);
    PyObject *heartbeat = PyObject_GetAttr(core, attr[A_HEARTBEAT]);
    if (!heartbeat) {
        Py_DECREF(data);
        return NULL;
    }
    int traffic = 0;
    if (heartbeat != Py_None) {
        traffic = PyObject_RichCompareBool(data, heartbeat_frame, Py_NE);
        if (traffic > 0 && PyObject_SetAttr(heartbeat, attr[A_SENT], Py_True) < 0)
            traffic = -1;
    }
    Py_DECREF(heartbeat);
    if (traffic < 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

/* conn._flush() (self is the connection) */
static PyObject *tx_connection_flush(PyObject *conn, PyObject *unused)
{
    int fast = client_connection_type != NULL && PyObject_TypeCheck(conn, client_connection_type);
    if (cl_set(conn, fast, CL_FLUSH_SCHEDULED, Py_False) < 0
        || cl_set(conn, fast, CL_UNFLUSHED, small_zero) < 0)
        return NULL;
    PyObject *core = cl_get(conn, fast, CL_CORE, 1);
    if (!core)
        return NULL;
    PyObject *data = core_data_to_send(core);
    Py_DECREF(core);
    if (!data)
        return NULL;
    int write = PyObject_IsTrue(data);
    if (write > 0) {
        PyObject *ended = PyObject_GetAttr(conn, attr[A_ENDED]);
        write = ended ? PyObject_IsTrue(ended) : -1;
        Py_XDECREF(ended);
        write = write < 0 ? -1 : !write;
    }
    if (write > 0) {
        PyObject *runtime = PyObject_GetAttr(conn, attr[A_RUNTIME]);
        PyObject *r = runtime ? PyObject_CallMethodOneArg(runtime, attr[A_WRITE], data) : NULL;
        Py_XDECREF(runtime);
        Py_XDECREF(r);
        write = r ? 1 : -1;
    }
    Py_DECREF(data);
    if (write < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* install_flush(connection_class, core_class, data_to_send, heartbeat_frame)
 *   -> _flush method descriptor for connection_class (the caller sets it) */
static PyObject *tx_install_flush(PyObject *self, PyObject *args)
{
    PyObject *cls, *core_cls, *data_to_send, *frame;
    if (!PyArg_ParseTuple(args, "O!O!OO!", &PyType_Type, &cls, &PyType_Type, &core_cls,
                          &data_to_send, &PyBytes_Type, &frame))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    if ((!small_zero && !(small_zero = PyLong_FromLong(0)))
        || (!empty_bytes && !(empty_bytes = PyBytes_FromStringAndSize(NULL, 0))))
        return NULL;
    static PyMethodDef flush_def = {
        "_flush", (PyCFunction)tx_connection_flush, METH_NOARGS,
        "Hand everything queued for the broker to the transport in one write "
        "(C accelerator)."};
    PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, &flush_def);
    if (!descr)
        return NULL;
    keep_ref((PyObject **)&flush_core_type, core_cls);
    keep_ref(&pure_data_to_send, data_to_send);
    keep_ref(&heartbeat_frame, frame);
    return descr;
}

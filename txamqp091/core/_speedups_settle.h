/* The asyncio adapter's FutureRuntime.resolve_all, its loop over the futures an ack
 * confirms, in C; included once by _speedups.c.
 *
 * Per future, resolve_all takes the done callbacks off (so that they run in one loop
 * Handle, not one call_soon each) and sets the result: done(), _callbacks,
 * remove_done_callback() per callback, a (callback, context, future) entry, set_result().
 * In Python that loop costs about 1,500 instructions of bytecode per confirmed
 * publish around those C methods (callgrind). settle_all makes the same calls, in the
 * same order, with the same arguments, on:
 *
 *     a list of futures of exactly asyncio's Future class (install_settle_all) with
 *     no instance attributes (nothing can shadow its methods)
 *                                 -> each method called through the class's own
 *        descriptor; the first callback found asks queue_calls() for the list to
 *        append to when there is none yet, where the Python loop makes it
 *     anything else                -> False, before doing anything: the Python loop
 *        (the reference) runs instead
 *
 * A future the list holds by the time it is reached that is not such a future (only
 * code run by a callback's __eq__, inside remove_done_callback, could put it there) has
 * its methods looked up by name, as Python does. Errors propagate as the Python loop's
 * would, with what was settled before them settled. */

static PyTypeObject *settle_future_type = NULL;
static Py_ssize_t settle_dict_offset = 0;
static PyObject *fut_done = NULL, *fut_remove = NULL, *fut_set_result = NULL;

/* 1 when w is a Future of the installed class with no instance attributes. */
static inline int settle_plain(PyObject *w)
{
    if (Py_TYPE(w) != settle_future_type)
        return 0;
    PyObject *dict = *(PyObject **)((char *)w + settle_dict_offset);
    return dict == NULL || PyDict_GET_SIZE(dict) == 0;
}

/* w.<name>(*args): through the class's descriptor for a plain future, by name else. */
static inline PyObject *settle_call(PyObject *w, int plain, PyObject *descr, PyObject *name,
                                    PyObject *arg)
{
    PyObject *stack[2] = {w, arg};
    size_t n = arg ? 2 : 1;
    return plain ? PyObject_Vectorcall(descr, stack, n, NULL)
                 : PyObject_VectorcallMethod(name, stack, n, NULL);
}

/* `for callback, context in callbacks`: one entry's two values (borrowed from the new
 * reference *holder, which the caller releases), or -1 raised as Python raises it. */
static int settle_unpack(PyObject *item, PyObject **holder, PyObject **cb, PyObject **ctx)
{
    PyObject *tuple = PyTuple_CheckExact(item) ? Py_NewRef(item) : PySequence_Tuple(item);
    if (!tuple)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n != 2) {
        if (n < 2)
            PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)", n);
        else
            PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        Py_DECREF(tuple);
        return -1;
    }
    *holder = tuple;
    *cb = PyTuple_GET_ITEM(tuple, 0);
    *ctx = PyTuple_GET_ITEM(tuple, 1);
    return 0;
}

/* One future: what the Python loop's body does. calls: a new reference or NULL (the
 * list not asked for yet), updated. 0, or -1 raised. */
static int settle_one(PyObject *w, PyObject *value, PyObject **calls, PyObject *queue_calls)
{
    int plain = settle_plain(w);
    PyObject *r = settle_call(w, plain, fut_done, attr[A_DONE], NULL);
    if (!r)
        return -1;
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (done)
        return done < 0 ? -1 : 0;
    PyObject *callbacks = PyObject_GetAttr(w, attr[A_CALLBACKS]);
    if (!callbacks)
        return -1;
    int any = PyObject_IsTrue(callbacks);
    if (any < 0)
        goto fail;
    if (any) {
        if (*calls == NULL) {
            *calls = PyObject_CallNoArgs(queue_calls);
            if (!*calls)
                goto fail;
            if (!PyList_CheckExact(*calls)) {
                PyErr_SetString(PyExc_TypeError, "settle_all: queue_calls() must return a list");
                goto fail;
            }
        }
        PyObject *it = PyObject_GetIter(callbacks);
        if (!it)
            goto fail;
        PyObject *item;
        while ((item = PyIter_Next(it)) != NULL) {
            PyObject *holder, *cb, *ctx;
            int bad = settle_unpack(item, &holder, &cb, &ctx);
            Py_DECREF(item);
            if (bad)
                break;
            r = settle_call(w, plain, fut_remove, attr[A_REMOVE_DONE_CALLBACK], cb);
            PyObject *entry = r ? PyTuple_Pack(3, cb, ctx, w) : NULL;
            Py_XDECREF(r);
            Py_DECREF(holder);
            int appended = entry ? PyList_Append(*calls, entry) : -1;
            Py_XDECREF(entry);
            if (appended < 0)
                break;
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            goto fail;
    }
    Py_DECREF(callbacks);
    r = settle_call(w, plain, fut_set_result, attr[A_SET_RESULT], value);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
fail:
    Py_DECREF(callbacks);
    return -1;
}

/* settle_all(waiters, value, calls, queue_calls) -> bool: see the top of this file.
 * calls is the list to append to (resolve_all's are lists), or None until
 * queue_calls() makes one. */
static PyObject *tx_settle_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "settle_all(waiters, value, calls, queue_calls)");
        return NULL;
    }
    PyObject *waiters = args[0], *value = args[1], *queue_calls = args[3];
    if (settle_future_type == NULL || !PyList_CheckExact(waiters)
        || (args[2] != Py_None && !PyList_CheckExact(args[2])))
        Py_RETURN_FALSE;
    Py_ssize_t n = PyList_GET_SIZE(waiters);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!settle_plain(PyList_GET_ITEM(waiters, i)))
            Py_RETURN_FALSE;
    PyObject *calls = args[2] == Py_None ? NULL : Py_NewRef(args[2]);
    /* As Python's list iteration: the length read at each step. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
        PyObject *w = Py_NewRef(PyList_GET_ITEM(waiters, i));
        int failed = settle_one(w, value, &calls, queue_calls);
        Py_DECREF(w);
        if (failed) {
            Py_XDECREF(calls);
            return NULL;
        }
    }
    Py_XDECREF(calls);
    Py_RETURN_TRUE;
}

/* install_settle_all(future_class) -> bool: settle_all's future class (asyncio.Future),
 * when its instances keep attributes in a dict at a fixed offset (the C Future); False,
 * and settle_all declines every batch, otherwise. */
static PyObject *tx_install_settle_all(PyObject *self, PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "install_settle_all expects a class");
        return NULL;
    }
    PyTypeObject *tp = (PyTypeObject *)cls;
    if (tp->tp_dictoffset <= 0)  /* no dict, or a managed one (a Python class) */
        Py_RETURN_FALSE;
    if (intern_attrs() < 0)
        return NULL;
    PyObject *names[3] = {attr[A_DONE], attr[A_REMOVE_DONE_CALLBACK], attr[A_SET_RESULT]};
    PyObject *descrs[3];
    PyObject *dict = tp->tp_dict;
    for (int i = 0; i < 3; i++) {
        descrs[i] = PyDict_GetItemWithError(dict, names[i]);
        if (!descrs[i]) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_FALSE;  /* inherited, or not there: leave it to Python */
        }
    }
    keep_ref(&fut_done, descrs[0]);
    keep_ref(&fut_remove, descrs[1]);
    keep_ref(&fut_set_result, descrs[2]);
    settle_dict_offset = tp->tp_dictoffset;
    Py_INCREF(cls);
    Py_XSETREF(settle_future_type, tp);
    Py_RETURN_TRUE;
}

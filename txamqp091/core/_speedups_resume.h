/* DeferredRuntime.try_resolve's common case in C; included once by _speedups.c.
 *
 * A getter's message for a coroutine that waits on the getter (an RPC's every request
 * and reply, a consumer loop that emptied its buffer): the Python try_resolve marks the
 * LeanDeferred fired and resumes the coroutine with one round of Twisted's
 * _inlineCallbacks loop (_deferred._resume_coroutine), whose usual next step is an
 * ``await`` of the next getter. That is three Python frames and a Context.run per RPC
 * half; here it is one C call:
 *
 *     waiter fired with the message (callbacks cleared, no canceller, running)
 *     with context: outcome = coroutine.send(message)
 *     returned v           -> status.deferred.callback(v)
 *     raised               -> _coroutine_raised(status, exc)
 *     yielded an unfired Deferred or LeanDeferred
 *                          -> its resumption pair appended, status.waitingOn = it
 *     yielded anything else-> _resume_yielded(it, coroutine, status, context)
 *     then: not running, result None, callbacks added meanwhile run
 *     (anything above raised: _resolve_raised(waiter, exc))
 *
 * Every other case (held waiters, another waiter or value type, a paused or debugged
 * Deferred, more callbacks, a generator under inlineCallbacks, FAST_RESUMPTION off in
 * twisted/_deferred... as the runtime module reads it) calls the Python try_resolve,
 * which stays the reference: tests/twisted_adapter/test_lean_deferred.py runs both. */

static PyObject *pure_try_resolve = NULL;    /* DeferredRuntime.try_resolve (Python) */
static PyTypeObject *lean_type = NULL;       /* LeanDeferred */
static PyTypeObject *deferred_type = NULL;   /* Deferred */
/* message_type (txamqp091.message.Message) is defined in _speedups_await.h, which
 * reads it too; install_try_resolve sets it. */
static PyObject *got_result = NULL;          /* defer._gotResultInlineCallbacks */
static PyObject *no_keywords = NULL;         /* Twisted's empty mappingproxy */
static PyObject *runtime_globals = NULL;     /* twisted/runtime.py's globals */
static PyObject *resume_yielded = NULL, *coroutine_raised = NULL, *resolve_raised = NULL;

/* fn(arg, exc) for an exception taken by take_raised (None if there was none): what
 * the Python code's ``except BaseException as exc:`` block calls (the helpers take the
 * exception itself, so that no handled-exception state of the caller's frame is
 * touched). */
static PyObject *call_with_raised(PyObject *fn, PyObject *arg, PyObject *exc)
{
    if (!exc)
        exc = Py_None;
    PyObject *stack[2] = {arg, exc};
    return PyObject_Vectorcall(fn, stack, 2, NULL);
}

/* The coroutine's outcome, as _resume_coroutine takes it: 0, or -1 with an error set
 * that escaped the Deferreds (the caller fails the waiter with it). */
static int resumed(PySendResult status, PyObject *outcome, PyObject *args)
{
    PyObject *gen = PyTuple_GET_ITEM(args, 1), *cstatus = PyTuple_GET_ITEM(args, 2);
    PyObject *r = NULL;
    if (status == PYGEN_RETURN) {
        PyObject *d = PyObject_GetAttr(cstatus, attr[A_DEFERRED]);
        if (d) {
            r = PyObject_CallMethodOneArg(d, attr[A_CALLBACK], outcome);
            Py_DECREF(d);
        }
        Py_DECREF(outcome);
    } else if (status == PYGEN_ERROR) {
        PyObject *exc = take_raised();
        r = call_with_raised(coroutine_raised, cstatus, exc);
        Py_XDECREF(exc);
    } else {
        PyTypeObject *kind = Py_TYPE(outcome);
        int unfired = 0;
        if (kind == lean_type || kind == deferred_type) {
            unfired = w_is_false(outcome, W_CALLED);
            if (unfired < 0) {
                Py_DECREF(outcome);
                return -1;
            }
        }
        if (unfired) {
            /* What _inlineCallbacks' addBoth(_gotResultInlineCallbacks, waiting, gen,
             * status, context) does to a Deferred that has not fired, then waits. */
            PyObject *callbacks = w_get(outcome, W_CALLBACKS);
            PyObject *waiting = NULL, *cargs = NULL, *call = NULL, *pair = NULL;
            if (callbacks && (waiting = PyList_New(2))) {
                PyList_SET_ITEM(waiting, 0, Py_NewRef(Py_False));
                PyList_SET_ITEM(waiting, 1, Py_NewRef(Py_None));
                if ((cargs = PyTuple_Pack(4, waiting, gen, cstatus, PyTuple_GET_ITEM(args, 3)))
                    && (call = PyTuple_Pack(3, got_result, cargs, no_keywords))
                    && (pair = PyTuple_Pack(2, call, call))) {
                    /* _callbacks.append(pair): a list's own, else its append method */
                    int appended = -1;
                    if (PyList_CheckExact(callbacks)) {
                        appended = PyList_Append(callbacks, pair);
                    } else {
                        PyObject *a = PyObject_CallMethodOneArg(callbacks, attr[A_APPEND], pair);
                        appended = a ? 0 : -1;
                        Py_XDECREF(a);
                    }
                    if (appended == 0
                        && PyObject_SetAttr(cstatus, attr[A_WAITING_ON], outcome) == 0)
                        r = Py_NewRef(Py_None);
                }
            }
            Py_XDECREF(callbacks);
            Py_XDECREF(waiting);
            Py_XDECREF(cargs);
            Py_XDECREF(call);
            Py_XDECREF(pair);
        } else {
            PyObject *stack[4] = {outcome, gen, cstatus, PyTuple_GET_ITEM(args, 3)};
            r = PyObject_Vectorcall(resume_yielded, stack, 4, NULL);
        }
        Py_DECREF(outcome);
    }
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The callback (fn, args, kwargs) of a Deferred's callbacks when they are one pair of
 * the shape addCallbacks makes, or NULL (borrowed from the list: hold a reference
 * before clearing it). */
static PyObject *lone_callback(PyObject *callbacks)
{
    if (!PyList_CheckExact(callbacks) || PyList_GET_SIZE(callbacks) != 1)
        return NULL;
    PyObject *pair = PyList_GET_ITEM(callbacks, 0);
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
        return NULL;
    PyObject *call = PyTuple_GET_ITEM(pair, 0);
    if (!PyTuple_CheckExact(call) || PyTuple_GET_SIZE(call) != 3)
        return NULL;
    return call;
}

/* The arguments (waiting, coroutine, status, context) of the one callback pair,
 * _gotResultInlineCallbacks', of a waiter that only a coroutine not running waits
 * on, or NULL (borrowed from the waiter's callbacks: hold a reference before
 * clearing them). */
static PyObject *lone_resumption(PyObject *callbacks)
{
    PyObject *call = lone_callback(callbacks);
    if (!call || PyTuple_GET_ITEM(call, 0) != got_result)
        return NULL;
    PyObject *args = PyTuple_GET_ITEM(call, 1);
    if (!PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) != 4)
        return NULL;
    PyObject *waiting = PyTuple_GET_ITEM(args, 0);
    if (!PyList_CheckExact(waiting) || PyList_GET_SIZE(waiting) < 1
        || PyList_GET_ITEM(waiting, 0) != Py_False
        || !PyCoro_CheckExact(PyTuple_GET_ITEM(args, 1))
        || !PyContext_CheckExact(PyTuple_GET_ITEM(args, 3)))
        return NULL;
    return args;
}

/* The Python try_resolve(self, waiter, value), for everything not done here. */
static PyObject *pure_resolve(PyObject *self, PyObject *waiter, PyObject *value)
{
    PyObject *stack[3] = {self, waiter, value};
    return PyObject_Vectorcall(pure_try_resolve, stack, 3, NULL);
}

/* runtime.try_resolve(waiter, value) -> bool (self is the runtime) */
static PyObject *tx_try_resolve(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "try_resolve(waiter, value)");
        return NULL;
    }
    PyObject *waiter = args[0], *value = args[1];
    if (Py_TYPE(waiter) != lean_type || Py_TYPE(value) != message_type)
        return pure_resolve(self, waiter, value);
    PyObject *fast = PyDict_GetItemWithError(runtime_globals, attr[A_FAST_RESUMPTION]);
    if (fast != Py_True) {
        if (PyErr_Occurred())
            return NULL;
        return pure_resolve(self, waiter, value);
    }
    PyObject *held = PyObject_GetAttr(self, attr[A_HELD]);
    if (!held)
        return NULL;
    int holding = held != Py_None;
    Py_DECREF(held);
    if (holding)
        return pure_resolve(self, waiter, value);
    int plain;
    if ((plain = w_is_false(waiter, W_CALLED)) <= 0
        || (plain = w_is_false(waiter, W_PAUSED)) <= 0
        || (plain = attr_is_false(waiter, A_DEBUG)) <= 0) {
        if (plain < 0)
            return NULL;
        return pure_resolve(self, waiter, value);
    }
    PyObject *callbacks = w_get(waiter, W_CALLBACKS);
    if (!callbacks)
        return NULL;
    PyObject *rargs = lone_resumption(callbacks);
    if (!rargs) {
        Py_DECREF(callbacks);
        return pure_resolve(self, waiter, value);
    }
    Py_INCREF(rargs);  /* the callbacks' pair goes with the clear below */
    /* LeanDeferred.callback's start for a lone pair. */
    if (PyList_SetSlice(callbacks, 0, PyList_GET_SIZE(callbacks), NULL) < 0
        || w_set(waiter, W_CANCELLER, Py_None) < 0 || w_set(waiter, W_CALLED, Py_True) < 0
        || w_set(waiter, W_RESULT, value) < 0 || w_set(waiter, W_RUNNING, Py_True) < 0)
        goto error;
    {
        PyObject *context = PyTuple_GET_ITEM(rargs, 3), *outcome = NULL;
        PySendResult status = PYGEN_ERROR;
        if (PyContext_Enter(context) == 0) {
            status = PyIter_Send(PyTuple_GET_ITEM(rargs, 1), value, &outcome);
            if (PyContext_Exit(context) < 0) {
                Py_CLEAR(outcome);
                status = PYGEN_ERROR;
            }
        }
        if (resumed(status, outcome, rargs) < 0) {
            /* try_resolve's ``except BaseException as exc:``: the exception taken
             * first (no Python code runs with one pending), then the waiter is no
             * longer running and keeps its Failure (_resolve_raised). */
            PyObject *exc = take_raised();
            PyObject *r = call_with_raised(resolve_raised, waiter, exc);
            Py_XDECREF(exc);
            if (!r)
                goto error;
            Py_DECREF(r);
            goto done;
        }
    }
    if (w_set(waiter, W_RUNNING, Py_False) < 0 || w_set(waiter, W_RESULT, Py_None) < 0)
        goto error;
    if (PyList_GET_SIZE(callbacks)) {  /* added while the coroutine ran */
        PyObject *r = PyObject_CallMethodNoArgs(waiter, attr[A_RUN_CALLBACKS]);
        if (!r)
            goto error;
        Py_DECREF(r);
    }
done:
    Py_DECREF(rargs);
    Py_DECREF(callbacks);
    Py_RETURN_TRUE;
error:
    Py_DECREF(rargs);
    Py_DECREF(callbacks);
    return NULL;
}

/* install_try_resolve(runtime_class, try_resolve, waiter_class, deferred_class,
 *                     message_class, got_result, no_keywords, runtime_globals,
 *                     resume_yielded, coroutine_raised, resolve_raised)
 *   -> try_resolve method descriptor for runtime_class (the caller sets it) */
static PyObject *tx_install_try_resolve(PyObject *self, PyObject *args)
{
    PyObject *cls, *pure, *lean, *deferred, *message, *got, *nokw, *globals, *yielded, *raised,
        *failed;
    if (!PyArg_ParseTuple(args, "O!OO!O!O!OOO!OOO", &PyType_Type, &cls, &pure, &PyType_Type, &lean,
                          &PyType_Type, &deferred, &PyType_Type, &message, &got, &nokw,
                          &PyDict_Type, &globals, &yielded, &raised, &failed))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    static PyMethodDef try_resolve_def = {
        "try_resolve", (PyCFunction)(void (*)(void))tx_try_resolve, METH_FASTCALL,
        "Resolve the waiter unless it is done; say whether it was resolved (C accelerator "
        "for a coroutine waiting on a getter)."};
    PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, &try_resolve_def);
    if (!descr)
        return NULL;
    PyObject *keep[] = {pure, lean, deferred, message, got, nokw, globals, yielded, raised, failed};
    PyObject **slots[] = {&pure_try_resolve, (PyObject **)&lean_type, (PyObject **)&deferred_type,
                          (PyObject **)&message_type, &got_result, &no_keywords, &runtime_globals,
                          &resume_yielded, &coroutine_raised, &resolve_raised};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        keep_ref(slots[i], keep[i]);
    return descr;
}

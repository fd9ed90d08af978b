/* twisted/_deferred.fire_each in C; included once by _speedups.c after the waiter code
 * (w_get, w_set, w_is_false, take_raised), _speedups_await.h (failure_type) and
 * _speedups_resume.h (lean_type, got_result, lone_callback).
 *
 * An ack settles a batch of confirmed publishes, each a LeanDeferred with the one
 * callback pair the publisher added: the Python fire_each runs LeanDeferred.callback's
 * lone-plain-pair case inline, about forty bytecodes and 3,500 instructions a Deferred
 * (callgrind), most of a confirmed message's firing. Here, per Deferred:
 *
 *     called                                  -> skipped
 *     plain batch (LeanDeferred.debug false, result not a Failure or Deferred), an
 *     exact LeanDeferred, not paused, one pair (fn, (), no keywords) that is neither
 *     Twisted's chaining continuation nor a coroutine's resumption
 *                                             -> callbacks cleared, no canceller,
 *        called, result, running; value = fn(result) (raised: its Failure); not
 *        running, result value; a Failure or Deferred value (passthru pair first for a
 *        Deferred), or callbacks added meanwhile, go to d._runCallbacks()
 *     anything else                           -> d.callback(result)
 *
 * The Python fire_each stays the reference (twisted/_deferred.PURE_FIRE_EACH);
 * tests/twisted_adapter/test_lean_deferred.py runs its fire_each tests on both. */

/* LeanDeferred, _gotResultInlineCallbacks and Failure are the waiter code's lean_type,
 * got_result (_speedups_resume.h) and failure_type (_speedups_await.h): whichever
 * installer runs first sets them, to the same objects. */
static PyObject *fire_continue = NULL;        /* defer._CONTINUE */
static PyObject *fire_passthru = NULL;        /* the passthru pair (_deferred._PASSTHRU) */
static PyObject *fire_deferred_types = NULL;  /* defer._DEFERRED_SUBCLASSES (a list) */
static PyObject *fire_failure_of = NULL;      /* _deferred.failure_of */

/* ``value is not None and (isinstance(value, Failure) or type(value) in
 * _DEFERRED_TYPES)``: 1 or 0 (*deferred: the second test held), -1 raised. */
static int fire_special(PyObject *value, int *deferred)
{
    *deferred = 0;
    if (value == Py_None)
        return 0;
    int r = PyObject_IsInstance(value, failure_type);
    if (r != 0)
        return r;
    r = PySequence_Contains(fire_deferred_types, (PyObject *)Py_TYPE(value));
    *deferred = r > 0;
    return r;
}

/* The lone plain pair's function of d (a borrowed reference into callbacks, which the
 * caller holds), or NULL when d's one pair is not plain (no error set). */
static PyObject *fire_lone_plain(PyObject *callbacks, int *error)
{
    *error = 0;
    PyObject *call = lone_callback(callbacks);
    if (!call)
        return NULL;
    PyObject *fn = PyTuple_GET_ITEM(call, 0);
    int no_args = is_false(Py_NewRef(PyTuple_GET_ITEM(call, 1)));
    int no_kwargs = no_args > 0 ? is_false(Py_NewRef(PyTuple_GET_ITEM(call, 2))) : no_args;
    if (no_args < 0 || no_kwargs < 0) {
        *error = 1;
        return NULL;
    }
    if (!no_args || !no_kwargs || fn == fire_continue || fn == got_result)
        return NULL;
    return fn;
}

/* Fire d with result as fire_each does (plain: the batch may take the inline case):
 * 0, or -1 raised. */
static int fire_one(PyObject *d, PyObject *result, int plain)
{
    int uncalled = w_is_false(d, W_CALLED);
    if (uncalled <= 0)
        return uncalled;  /* called: skipped */
    if (plain && Py_TYPE(d) == lean_type) {
        int unpaused = w_is_false(d, W_PAUSED);
        if (unpaused < 0)
            return -1;
        PyObject *callbacks = unpaused ? w_get(d, W_CALLBACKS) : NULL;
        if (unpaused && !callbacks)
            return -1;
        int error = 0;
        PyObject *fn = callbacks ? fire_lone_plain(callbacks, &error) : NULL;
        if (error) {
            Py_DECREF(callbacks);
            return -1;
        }
        if (fn) {
            Py_INCREF(fn);  /* its pair goes with the clear below */
            int status = -1;
            PyObject *value = NULL;
            if (PyList_SetSlice(callbacks, 0, PyList_GET_SIZE(callbacks), NULL) < 0
                || w_set(d, W_CANCELLER, Py_None) < 0 || w_set(d, W_CALLED, Py_True) < 0
                || w_set(d, W_RESULT, result) < 0 || w_set(d, W_RUNNING, Py_True) < 0)
                goto done;
            value = PyObject_CallOneArg(fn, result);
            if (!value) {  /* ``except BaseException: value = Failure()`` */
                PyObject *exc = take_raised();
                value = PyObject_CallOneArg(fire_failure_of, exc ? exc : Py_None);
                Py_XDECREF(exc);
                if (!value)
                    goto done;
            }
            if (w_set(d, W_RUNNING, Py_False) < 0 || w_set(d, W_RESULT, value) < 0)
                goto done;
            int deferred;
            int special = fire_special(value, &deferred);
            if (special < 0)
                goto done;
            if (special || PyList_GET_SIZE(callbacks)) {
                if (deferred && PyList_Insert(callbacks, 0, fire_passthru) < 0)
                    goto done;
                PyObject *r = PyObject_CallMethodNoArgs(d, attr[A_RUN_CALLBACKS]);
                if (!r)
                    goto done;
                Py_DECREF(r);
            }
            status = 0;
        done:
            Py_XDECREF(value);
            Py_DECREF(fn);
            Py_DECREF(callbacks);
            return status;
        }
        Py_XDECREF(callbacks);
    }
    PyObject *r = PyObject_CallMethodOneArg(d, attr[A_CALLBACK], result);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* fire_each(deferreds, result) */
static PyObject *tx_fire_each(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fire_each(deferreds, result)");
        return NULL;
    }
    PyObject *result = args[1];
    /* Deferred debugging is Twisted's switch on the class, read once per batch. */
    int plain = attr_is_false((PyObject *)lean_type, A_DEBUG);
    if (plain > 0) {
        int deferred, special = fire_special(result, &deferred);
        if (special < 0)
            return NULL;
        plain = !special;
    }
    if (plain < 0)
        return NULL;
    PyObject *it = PyObject_GetIter(args[0]);
    if (!it)
        return NULL;
    PyObject *d;
    while ((d = PyIter_Next(it))) {
        int status = fire_one(d, result, plain);
        Py_DECREF(d);
        if (status < 0) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* install_fire_each(waiter_class, continue, got_result, passthru, deferred_types,
 *                   failure_class, failure_of) -> True */
static PyObject *tx_install_fire_each(PyObject *self, PyObject *args)
{
    PyObject *cls, *cont, *got, *passthru, *types, *failure, *failure_of;
    if (!PyArg_ParseTuple(args, "O!OOOOOO", &PyType_Type, &cls, &cont, &got, &passthru, &types,
                          &failure, &failure_of))
        return NULL;
    if (intern_attrs() < 0)
        return NULL;
    PyObject *keep[] = {cls, cont, got, passthru, types, failure, failure_of};
    PyObject **slots[] = {(PyObject **)&lean_type, &fire_continue, &got_result,
                          &fire_passthru, &fire_deferred_types, &failure_type, &fire_failure_of};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        keep_ref(slots[i], keep[i]);
    Py_RETURN_TRUE;
}

/* ``await`` of a Twisted LeanDeferred without Python frames; included once by _speedups.c.
 *
 * Twisted's ``Deferred.__await__`` is its ``__iter__``, a generator: every ``await d``
 * (an RPC's two ``get()``s, a consumer loop's each) makes a generator object and runs
 * its frame once to yield ``d`` and once more, when the coroutine is resumed, to
 * return the result. DeferredAwait is the same loop as a small C iterator:
 *
 *     while True:
 *         if not d.called or d.paused: yield d
 *         elif the result is a Failure: <Twisted's own __await__ raises it>
 *         else: return d.result
 *
 * The Failure case (and only it) is handed to Twisted's ``__await__`` itself, so that
 * what it raises and how it clears the Failure's debug info stay Twisted's. The
 * iterator has no ``throw``: a coroutine thrown into (``_inlineCallbacks`` does so
 * for a failed Deferred it waited on) then raises at its ``await``, as when the
 * generator's ``yield`` raised. */

typedef struct {
    PyObject_HEAD
    PyObject *deferred;  /* the awaited Deferred, NULL once cleared */
} DeferredAwait;

static PyObject *await_fallback = NULL;  /* Deferred.__await__ (Twisted's, pure) */
/* txamqp091.message.Message, once install_try_resolve (_speedups_resume.h) set it */
static PyTypeObject *message_type = NULL;
static PyObject *failure_type = NULL;    /* twisted.python.failure.Failure */

/* One step: PYGEN_NEXT with *out = the Deferred (not fired yet), PYGEN_RETURN with
 * *out = its result, or PYGEN_ERROR with an exception set. */
static PySendResult await_step(DeferredAwait *it, PyObject **out)
{
    PyObject *d = it->deferred;
    *out = NULL;
    if (d == NULL) {  /* returned or raised already: exhausted, as a finished generator */
        *out = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    /* not d.called or d.paused: nothing to give yet */
    int not_called = w_is_false(d, W_CALLED);
    if (not_called < 0)
        return PYGEN_ERROR;
    int not_paused = not_called ? 1 : w_is_false(d, W_PAUSED);
    if (not_paused < 0)
        return PYGEN_ERROR;
    if (not_called || !not_paused) {
        *out = Py_NewRef(d);
        return PYGEN_NEXT;
    }
    PyObject *result = w_get(d, W_RESULT);
    if (!result)
        return PYGEN_ERROR;
    /* isinstance(result, Failure), answered at once for the results a consumer's and
     * an RPC's every await gets: a delivery of the installed class (its own, which
     * has no __class__ of another) or None. */
    int failed = result == Py_None || (message_type != NULL && Py_IS_TYPE(result, message_type))
                     ? 0
                     : PyObject_IsInstance(result, failure_type);
    if (failed == 0) {
        *out = result;
        return PYGEN_RETURN;
    }
    Py_DECREF(result);
    if (failed < 0)
        return PYGEN_ERROR;
    /* Twisted's own generator, stepped once: it raises the Failure's exception. */
    PyObject *gen = PyObject_CallOneArg(await_fallback, d);
    if (!gen)
        return PYGEN_ERROR;
    PySendResult status = PyIter_Send(gen, Py_None, out);
    Py_DECREF(gen);
    return status;
}

/* await_step, the iterator finished (its Deferred let go) once it returned or raised */
static PySendResult await_advance(DeferredAwait *it, PyObject **out)
{
    PySendResult status = await_step(it, out);
    if (status != PYGEN_NEXT)
        Py_CLEAR(it->deferred);
    return status;
}

static PySendResult await_am_send(PyObject *self, PyObject *arg, PyObject **out)
{
    (void)arg;  /* what the coroutine is sent is the Deferred's result: read it there */
    return await_advance((DeferredAwait *)self, out);
}

/* StopIteration(value) set as the current exception: what a generator's return is to
 * a caller of __next__ or send(). Made as an instance, so that a tuple or an
 * exception returned is the value itself, not the exception's arguments. */
static PyObject *await_result(PySendResult status, PyObject *value)
{
    if (status != PYGEN_RETURN)
        return value;  /* the Deferred (PYGEN_NEXT) or NULL with the error set */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    Py_DECREF(value);
    if (stop) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *await_iternext(PyObject *self)
{
    PyObject *value;
    PySendResult status = await_advance((DeferredAwait *)self, &value);
    return await_result(status, value);
}

static PyObject *await_send(PyObject *self, PyObject *arg)
{
    return await_iternext(self);
}

static int await_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((DeferredAwait *)self)->deferred);
    return 0;
}

static int await_clear(PyObject *self)
{
    Py_CLEAR(((DeferredAwait *)self)->deferred);
    return 0;
}

static void await_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((DeferredAwait *)self)->deferred);
    PyObject_GC_Del(self);
}

static PyMethodDef await_methods[] = {
    {"send", (PyCFunction)await_send, METH_O,
     "send(value): the next step; the value is ignored, as Deferred.__await__ ignores it."},
    {NULL, NULL, 0, NULL}};

static PyAsyncMethods await_async = {0, 0, 0, await_am_send};

static PyTypeObject DeferredAwaitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "txamqp091.core._speedups.DeferredAwait",
    .tp_basicsize = sizeof(DeferredAwait),
    .tp_dealloc = await_dealloc,
    .tp_as_async = &await_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The iterator of ``await`` on a LeanDeferred (C accelerator).",
    .tp_traverse = await_traverse,
    .tp_clear = await_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = await_iternext,
    .tp_methods = await_methods,
};

/* LeanDeferred.__await__ (a method descriptor of the class) */
static PyObject *deferred_await(PyObject *self, PyObject *unused)
{
    DeferredAwait *it = PyObject_GC_New(DeferredAwait, &DeferredAwaitType);
    if (!it)
        return NULL;
    it->deferred = Py_NewRef(self);
    PyObject_GC_Track((PyObject *)it);
    return (PyObject *)it;
}

/* install_deferred_await(cls, fallback, failure_class) -> __await__ method descriptor
 * for cls: the caller sets it as cls.__await__. fallback is Deferred.__await__,
 * stepped for a Failure result. */
static PyObject *tx_install_deferred_await(PyObject *self, PyObject *args)
{
    PyObject *cls, *fallback, *failure;
    if (!PyArg_ParseTuple(args, "O!OO!", &PyType_Type, &cls, &fallback, &PyType_Type, &failure))
        return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "install_deferred_await expects Deferred.__await__");
        return NULL;
    }
    if (PyType_Ready(&DeferredAwaitType) < 0 || intern_attrs() < 0)
        return NULL;
    static PyMethodDef await_def = {
        "__await__", (PyCFunction)deferred_await, METH_NOARGS,
        "The iterator ``await`` runs: the Deferred while it has not fired, then its result "
        "(C accelerator; Twisted's own __await__ raises a Failure)."};
    PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, &await_def);
    if (!descr)
        return NULL;
    keep_ref(&await_fallback, fallback);
    keep_ref(&failure_type, failure);
    return descr;
}

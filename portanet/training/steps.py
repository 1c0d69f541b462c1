"""A model's step functions, made from its graph, loss, optimizer and metrics, and the cache of
their compiled forms (docs/architecture.md, "Graph, steps, trainer").

    train_step(params, opt_state, totals, x, y, key, batch) -> (params, opt_state, totals)
    eval_step(params, totals, x, y) -> totals
    predict_step(params, x) -> outputs
    chunk_step(params, opt_state, totals, x_all, y_all, index, count, key, first)
        -> (params, opt_state, totals)       `count` train steps, batch i = rows index[i] of the data

Each is a pure function: no mutation of its inputs, no Python branching on array values, no
host synchronisation, so `backend.jit` compiles it (JAX) or captures it as a CUDA graph (CuPy).
`totals` are running sums on the device: the loss times the batch size ("loss"), the number of
examples ("count") and each metric's statistics; the host reads them once per progress update.
`key` (None without random layers) is the epoch's key; batch b draws with fold_in(key, b).
"""
from .. import random
from ..backend import floatx, get as _backend
from ..tree import tree_map


def fused(graph, loss):
    """True where the loss takes the logits of the graph's output activation (softmax with
    cross-entropy, sigmoid with binary cross-entropy): it then starts from the pre-activation."""
    return not loss.from_logits and loss.fused_activation is not None and graph.output_activation == loss.fused_activation


def objective(graph, loss, params, out, caches, y, gradients=True):
    """(loss of the batch + the weight penalties, its gradients or None): what training minimizes
    and evaluation reports. `out` and `caches` come from graph.forward."""
    value = graph.penalty(params)
    if fused(graph, loss):
        loss_value, dz = loss.logits_forward(y, graph.preactivation(caches))
        value = value + loss_value
        if not gradients:
            return value, None
        _, grads = graph.backward(params, caches, dz, from_preactivation=True)
    else:
        loss_value, loss_cache = loss.forward(y, out)
        value = value + loss_value
        if not gradients:
            return value, None
        _, grads = graph.backward(params, caches, loss.backward(loss_cache))
    return value, _added(grads, graph.penalty_grads(params))


def _added(grads, extra):
    """grads + extra where extra has entries (nested dicts of arrays, matched by key)."""
    if not isinstance(extra, dict):
        return grads + extra
    return {k: _added(v, extra[k]) if k in extra else v for k, v in grads.items()}


def _merged(tree, new):
    """`tree` with the entries of `new` (a sub-tree of it) replaced."""
    if not isinstance(new, dict):
        return new
    return {k: _merged(v, new[k]) if k in new else v for k, v in tree.items()}


def loss_and_grads(graph, loss, params, x, y, key):
    """(loss value, outputs, gradients) of one training batch."""
    value, out, grads, _ = _training_pass(graph, loss, params, x, y, key)
    return value, out, grads


def _training_pass(graph, loss, params, x, y, key):
    out, caches = graph.forward(params, x, True, key)
    value, grads = objective(graph, loss, params, out, caches, y)
    return value, out, grads, caches


def batch_stats(metrics, value, out, y, n):
    """The batch's contribution to the totals."""
    xp = _backend().xp
    stats = {"loss": value * n, "count": xp.asarray(float(n), dtype=out.dtype)}
    for metric in metrics:
        stats[metric.name] = metric.stats(y, out)
    return stats


def add(totals, stats):
    return tree_map(lambda a, b: a + b, totals, stats)


def make_train_step(graph, loss, optimizer, metrics):
    """The train step of these parts: the optimizer updates the graph's trainable parameters, then
    the layers' non-trainable state (moving statistics) takes the values of this batch's pass."""
    def train_step(params, opt_state, totals, x, y, key, batch):
        value, out, grads, caches = _training_pass(graph, loss, params, x, y,
                                                   None if key is None else random.fold_in(key, batch))
        update = graph.trainable_params(params)
        new_params, opt_state = optimizer.update(update, tree_map(lambda _, g: g, update, grads), opt_state)
        params = graph.state_updates(_merged(params, new_params), caches)
        return params, opt_state, add(totals, batch_stats(metrics, value, out, y, x.shape[0]))
    return train_step


def make_chunk_step(train_step):
    """`count` train steps in one call over data already on the device (JAX: one compiled
    fori_loop, no dispatch per batch); `first` is the number of the chunk's first batch."""
    def chunk_step(params, opt_state, totals, x_all, y_all, index, count, key, first):
        xp = _backend().xp

        def body(i, carry):
            rows = index[i, ...]
            batch = first + xp.astype(xp.asarray(i), xp.uint32) if key is not None else None
            return train_step(*carry, xp.take(x_all, rows, axis=0), xp.take(y_all, rows, axis=0), key, batch)

        return _backend().loop(body, count, (params, opt_state, totals))
    return chunk_step


def make_eval_step(graph, loss, metrics):
    def eval_step(params, totals, x, y):
        out, caches = graph.forward(params, x, False, None)
        value, _ = objective(graph, loss, params, out, caches, y, gradients=False)
        return add(totals, batch_stats(metrics, value, out, y, x.shape[0]))
    return eval_step


def make_predict_step(graph):
    def predict_step(params, x):
        return graph.forward(params, x, False, None)[0]
    return predict_step


# the arguments each step may overwrite with its outputs (donated, as jax.jit calls it)
_DONATED = {"train": (0, 1, 2), "chunk": (0, 1, 2), "eval": (1,), "predict": ()}


class Steps:
    """A model's steps, made and compiled once for the parts they are made of, and made again
    when one changed: the backend, floatx, the graph, the loss, the optimizer, the metrics,
    `jit_compile`, or a layer's `trainable`.

    `model` is read for `graph`, `loss`, `optimizer`, `metrics` and `jit_compile`."""

    def __init__(self, model):
        self.model, self.parts, self.compiled, self.template = model, None, {}, None

    def _current(self):
        m = self.model
        parts = (_backend().name, floatx(), id(m.graph), id(m.loss), id(m.optimizer), tuple(map(id, m.metrics)),
                 m.jit_compile, m.graph.trainable_flags())
        if parts != self.parts:
            self.parts, self.compiled, self.template = parts, {}, None

    def get(self, name, donate=True):
        """The step `name` ("train", "chunk", "eval", "predict"), compiled where the backend can.
        `donate=False`: no argument is overwritten (a caller that keeps the previous params)."""
        self._current()
        if (name, donate) not in self.compiled:
            m = self.model
            if name in ("train", "chunk"):
                fn = make_train_step(m.graph, m.loss, m.optimizer, m.metrics)
                fn = make_chunk_step(fn) if name == "chunk" else fn
            elif name == "eval":
                fn = make_eval_step(m.graph, m.loss, m.metrics)
            else:
                fn = make_predict_step(m.graph)
            donated = _DONATED[name] if donate else ()
            self.compiled[name, donate] = _backend().jit(fn, donate_argnums=donated) if m.jit_compile else fn
        return self.compiled[name, donate]

    def zero_totals(self):
        """Zero running sums of the loss and of every metric's statistics (shapes probed once)."""
        self._current()
        m = self.model
        xp, dtype = _backend().xp, _backend().float_dtype()
        if self.template is None:
            x = xp.zeros((1, *m.graph.input_shape), dtype=dtype)
            out = self.get("predict")(m.graph.params, x)
            sparse = m.loss.label_kind == "sparse"
            y = xp.zeros(out.shape[:-1], dtype=xp.int32) if sparse else xp.zeros(out.shape, dtype=dtype)
            self.template = {"loss": (), "count": (), **{mt.name: tree_map(lambda a: a.shape, mt.stats(y, out))
                                                          for mt in m.metrics}}
        return _zeros(self.template, dtype)


def _zeros(template, dtype):
    """Zero arrays of the shapes in `template` (tuples are its leaves), committed to the device."""
    backend = _backend()
    if isinstance(template, dict):
        return {k: _zeros(v, dtype) for k, v in template.items()}
    return backend.asarray(backend.xp.zeros(template, dtype=dtype))

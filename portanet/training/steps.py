"""A model's step functions, made from its graph, heads (loss and metrics per output) and
optimizer, and the cache of their compiled forms (docs/architecture.md, "Graph, steps, trainer").

    train_step(params, opt_state, totals, x, y, w, key, batch) -> (params, opt_state, totals)
    eval_step(params, totals, x, y, w) -> totals
    predict_step(params, x) -> outputs
    chunk_step(params, opt_state, totals, x_all, y_all, w_all, index, count, key, first)
        -> (params, opt_state, totals)       `count` train steps, batch i = rows index[i] of the data

x is a tuple with one array per input, y and w tuples with one array per output (w: sample
weights, None where an output has none). Each step is a pure function: no mutation of its
inputs, no Python branching on array values, no host synchronisation, so `backend.jit` compiles
it (JAX) or captures it as a CUDA graph (CuPy). `totals` are running sums on the device: the loss
times the batch size ("loss"), the number of examples ("count"), each output's loss (several
outputs) and each metric's statistics, keyed by their log names; the host reads them once per
progress update. `key` (None without random layers) is the epoch's key; batch b draws with
fold_in(key, b).
"""
from .. import random
from ..backend import floatx, get as _backend
from ..tree import tree_map
from .heads import output_losses


def fused(graph, loss, o=0):
    """True where output o's loss takes the logits of its activation (softmax with cross-entropy,
    sigmoid with binary cross-entropy): it then starts from the pre-activation."""
    return not loss.from_logits and loss.fused_activation is not None and graph.output_activation(o) == loss.fused_activation


def graph_inputs(graph, x):
    """The tuple x as the graph takes it (the array itself for one input)."""
    return x if len(graph.input_layers) > 1 else x[0]


def graph_outputs(graph, out):
    """The graph's outputs as a tuple."""
    return tuple(out) if len(graph.outputs) > 1 else (out,)


def objective(graph, heads, params, out, caches, y, w, gradients=True):
    """(total loss of the batch + the weight penalties, each output's loss, gradients or None):
    what training minimizes and evaluation reports. `out` and `caches` come from graph.forward."""
    value, parts, dys, fused_outputs = graph.penalty(params), [], [], []
    for o, (head, out_o) in enumerate(zip(heads, graph_outputs(graph, out))):
        if head.loss is None:
            parts.append(None)
            dys.append(None)
            continue
        if fused(graph, head.loss, o):
            part, d = head.loss.logits_forward(y[o], graph.preactivation(caches, o), w[o])
            fused_outputs.append(o)
        else:
            part, cache = head.loss.forward(y[o], out_o, w[o])
            d = head.loss.backward(cache) if gradients else None
        parts.append(part)
        value = value + (part if head.weight == 1.0 else head.weight * part)
        dys.append(d if head.weight == 1.0 or d is None else d * head.weight)
    if not gradients:
        return value, parts, None
    _, grads = graph.backward(params, caches, dys if len(dys) > 1 else dys[0], fused=fused_outputs)
    return value, parts, _added(grads, graph.penalty_grads(params))


def _added(grads, extra):
    """grads + extra where extra has entries (nested dicts of arrays, matched by key)."""
    if not isinstance(extra, dict):
        return grads + extra
    return {k: _added(v, extra[k]) if k in extra else v for k, v in grads.items()}


def _aligned(params, grads):
    """`grads` in the structure of `params`, zeros where a parameter has none (a layer that
    only feeds an output without a loss)."""
    if not isinstance(params, dict):
        return grads
    return {k: _aligned(v, grads[k]) if k in grads else tree_map(_backend().xp.zeros_like, v)
            for k, v in params.items()}


def _merged(tree, new):
    """`tree` with the entries of `new` (a sub-tree of it) replaced."""
    if not isinstance(new, dict):
        return new
    return {k: _merged(v, new[k]) if k in new else v for k, v in tree.items()}


def loss_and_grads(graph, heads, params, x, y, key=None, w=None):
    """(loss value, outputs, gradients) of one training batch (x, y, w: tuples, or one array)."""
    x, y = (x if isinstance(x, tuple) else (x,)), (y if isinstance(y, tuple) else (y,))
    w = w if isinstance(w, tuple) else (w,) * len(heads)
    value, _, out, grads, _ = _training_pass(graph, heads, params, x, y, w, key)
    return value, out, grads


def _training_pass(graph, heads, params, x, y, w, key):
    out, caches = graph.forward(params, graph_inputs(graph, x), True, key)
    value, parts, grads = objective(graph, heads, params, out, caches, y, w)
    return value, parts, out, grads, caches


def batch_stats(graph, heads, value, parts, out, y, w, n):
    """The batch's contribution to the totals."""
    xp = _backend().xp
    stats = {"loss": value * n, "count": xp.asarray(float(n), dtype=_backend().float_dtype())}
    outs = graph_outputs(graph, out)
    for o, name in output_losses(heads):
        stats[name] = parts[o] * n
    for o, head in enumerate(heads):
        for name, metric, weighted in head.metrics:
            stats[name] = metric.stats(y[o], outs[o], w[o]) if weighted else metric.stats(y[o], outs[o])
    return stats


def add(totals, stats):
    return tree_map(lambda a, b: a + b, totals, stats)


def make_train_step(graph, heads, optimizer):
    """The train step of these parts: the optimizer updates the graph's trainable parameters, then
    the layers' non-trainable state (moving statistics) takes the values of this batch's pass."""
    def train_step(params, opt_state, totals, x, y, w, key, batch):
        x, y, w = _backend().constrain_batch((x, y, w))   # split across a layout's devices
        value, parts, out, grads, caches = _training_pass(
            graph, heads, params, x, y, w, None if key is None else random.fold_in(key, batch))
        update = graph.trainable_params(params)
        new_params, opt_state = optimizer.update(update, _aligned(update, grads), opt_state)
        params = graph.state_updates(_merged(params, new_params), caches)
        return params, opt_state, add(totals, batch_stats(graph, heads, value, parts, out, y, w, x[0].shape[0]))
    return train_step


def _take(tree, rows):
    """The rows `rows` of every array of `tree` (None entries stay None)."""
    xp = _backend().xp
    if isinstance(tree, tuple):
        return tuple(_take(a, rows) for a in tree)
    return None if tree is None else xp.take(tree, rows, axis=0)


def make_chunk_step(train_step):
    """`count` train steps in one call over data already on the device (JAX: one compiled
    fori_loop, no dispatch per batch); `first` is the number of the chunk's first batch."""
    def chunk_step(params, opt_state, totals, x_all, y_all, w_all, index, count, key, first):
        xp = _backend().xp

        def body(i, carry):
            rows = index[i, ...]
            batch = first + xp.astype(xp.asarray(i), xp.uint32) if key is not None else None
            return train_step(*carry, _take(x_all, rows), _take(y_all, rows), _take(w_all, rows), key, batch)

        return _backend().loop(body, count, (params, opt_state, totals))
    return chunk_step


def make_eval_step(graph, heads):
    def eval_step(params, totals, x, y, w):
        x, y, w = _backend().constrain_batch((x, y, w))
        out, caches = graph.forward(params, graph_inputs(graph, x), False, None)
        value, parts, _ = objective(graph, heads, params, out, caches, y, w, gradients=False)
        return add(totals, batch_stats(graph, heads, value, parts, out, y, w, x[0].shape[0]))
    return eval_step


def make_predict_step(graph):
    def predict_step(params, x):
        x = _backend().constrain_batch(x)
        return graph.forward(params, graph_inputs(graph, x), False, None)[0]
    return predict_step


# the arguments each step may overwrite with its outputs (donated, as jax.jit calls it)
_DONATED = {"train": (0, 1, 2), "chunk": (0, 1, 2), "eval": (1,), "predict": ()}


class Steps:
    """A model's steps, made and compiled once for the parts they are made of, and made again
    when one changed: the backend, floatx, the graph, the heads (losses and metrics), the
    optimizer, `jit_compile`, a layer's `trainable`, or the data-parallel layout. The steps of the last few sets of parts
    are kept, so that toggling `trainable` back and forth (a GAN's discriminator) compiles each
    state once.

    `model` is read for `graph`, `heads`, `optimizer` and `jit_compile`."""

    KEPT = 4

    def __init__(self, model):
        self.model, self.cache = model, {}

    def _current(self):
        """The cache entry {"steps": {...}, "template": ...} of the current parts (the parts
        themselves are the key: held, their ids cannot be reused)."""
        m = self.model
        parts = (_backend().name, floatx(), m.graph, tuple(m.heads or ()), m.optimizer, m.jit_compile,
                 m.graph.trainable_flags(), _backend().layout)
        entry = self.cache.pop(parts, None) or {"steps": {}, "template": None}
        self.cache[parts] = entry  # the most recent last
        while len(self.cache) > self.KEPT:
            del self.cache[next(iter(self.cache))]
        return entry

    @property
    def compiled(self):
        """{(name, donate): step} of the current parts."""
        return self._current()["steps"]

    def get(self, name, donate=True):
        """The step `name` ("train", "chunk", "eval", "predict"), compiled where the backend can.
        `donate=False`: no argument is overwritten (a caller that keeps the previous params)."""
        compiled = self._current()["steps"]
        if (name, donate) not in compiled:
            m = self.model
            if name in ("train", "chunk"):
                fn = make_train_step(m.graph, m.heads, m.optimizer)
                fn = make_chunk_step(fn) if name == "chunk" else fn
            elif name == "eval":
                fn = make_eval_step(m.graph, m.heads)
            else:
                fn = make_predict_step(m.graph)
            donated = _DONATED[name] if donate else ()
            compiled[name, donate] = _backend().jit(fn, donate_argnums=donated) if m.jit_compile else fn
        return compiled[name, donate]

    def zero_totals(self):
        """Zero running sums of the losses and of every metric's statistics (their shapes found
        once, from the graph's output shapes: nothing is compiled for it)."""
        entry = self._current()
        m = self.model
        xp, dtype = _backend().xp, _backend().float_dtype()
        if entry["template"] is None:
            outs = [xp.zeros((1, *shape), dtype=dtype) for shape in m.graph.output_shapes]
            template = {"loss": (), "count": (), **{name: () for _, name in output_losses(m.heads)}}
            for head, out in zip(m.heads, outs):
                y = xp.zeros(out.shape[:-1], dtype=xp.int32) if head.label_kind == "sparse" else xp.zeros_like(out)
                for name, metric, _ in head.metrics:
                    template[name] = tree_map(lambda a: a.shape, metric.stats(y, out))
            entry["template"] = template
        return _zeros(entry["template"], dtype)


def _zeros(template, dtype):
    """Zero arrays of the shapes in `template` (tuples are its leaves), committed to the device."""
    backend = _backend()
    if isinstance(template, dict):
        return {k: _zeros(v, dtype) for k, v in template.items()}
    return backend.asarray(backend.xp.zeros(template, dtype=dtype))

"""Models: `Sequential` and the functional `Model`, with compile / fit / evaluate / predict.

A model is a graph of layer calls. Its whole training step is one pure function (DESIGN.md §1):

    train_step(params, opt_state, totals, x, y, key) -> (params, opt_state, totals)

forward through every node (keeping caches), the loss (fused with softmax/sigmoid where it
matches), backward through every node in reverse (summing gradients where outputs fan out),
regularization, the optimizer update, and the running sums of loss and metric statistics. On JAX
it is compiled once with `jax.jit`; elsewhere it is just called. The host loop around it only
slices batches and talks to the user once per progress update.
"""
import contextlib
import math
import os
import time
import warnings

from . import callbacks as callbacks_module
from . import data, losses, metrics as metrics_module, optimizers, random
from .backend import floatx, get as _backend, use as use_backend
from .errors import DeviceMemoryError, InvalidArgumentError, InvalidTypeError, invalid
from .layers.base import ActivatedLayer, Layer, SymbolicTensor, unique_name
from .layers.core import InputLayer
from .tree import tree_map


class Node:
    """One layer call: `layer` applied to the values at `inputs` (0 is the model input, i + 1 the
    output of node i)."""

    def __init__(self, layer, inputs):
        self.layer, self.inputs = layer, tuple(inputs)


def _device_data_budget():
    """PORTANET_DEVICE_DATA_BUDGET (bytes, default 2 GiB)."""
    value = os.environ.get("PORTANET_DEVICE_DATA_BUDGET", str(2 ** 31))
    if not value.isdigit():
        raise invalid("PORTANET_DEVICE_DATA_BUDGET", "a number of bytes (a non-negative integer)", value)
    return int(value)


class Model:
    """A functional model: `Model(inputs=pn.Input((4,)), outputs=y)` for a graph of layer calls.

    `device_data_budget` (bytes; PORTANET_DEVICE_DATA_BUDGET, default 2 GiB; settable per model):
    `fit` puts training data of at most this size (as floats) on the device once and gathers
    each batch there; larger data is sent batch by batch."""

    device_data_budget = _device_data_budget()

    def __init__(self, inputs=None, outputs=None, name=None):
        self.name = name or unique_name("functional" if type(self) is Model else "sequential")
        self.nodes, self.input_shape = [], None
        self.optimizer = self.loss = None
        self.metrics, self.opt_state, self.history = [], None, None
        self.stop_training = self._warned_nonfinite = False
        self.seed = None
        self._steps, self._totals_template = {}, None
        if inputs is not None or outputs is not None:
            self._set_graph(inputs, outputs)

    # ----- graph ---------------------------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        if not isinstance(inputs, SymbolicTensor) or not isinstance(inputs.layer, InputLayer):
            raise invalid("inputs", "the tensor returned by portanet.Input(shape)", inputs, InvalidTypeError)
        if not isinstance(outputs, SymbolicTensor):
            raise invalid("outputs", "a tensor computed from `inputs` by layer calls", outputs, InvalidTypeError)
        index = {id(inputs): 0}
        nodes = []

        def visit(tensor):
            if id(tensor) in index:
                return index[id(tensor)]
            if isinstance(tensor.layer, InputLayer):
                raise invalid("outputs", "tensors computed from the model's `inputs` only",
                              f"a tensor from another input ({tensor.layer.name})")
            sources = [visit(t) for t in tensor.inputs]
            nodes.append(Node(tensor.layer, sources))
            index[id(tensor)] = len(nodes)
            return len(nodes)

        visit(outputs)
        self.nodes, self.input_shape = nodes, inputs.shape
        self.input_layer = inputs.layer
        self._mark_first_layers()

    def _mark_first_layers(self):
        # a layer fed only by the model input need not compute dL/dx (nobody uses it)
        for node in self.nodes:
            node.layer.needs_input_grad = any(
                n.layer is node.layer and any(i != 0 for i in n.inputs) for n in self.nodes)

    @property
    def layers(self):
        """Every layer once, in call order (reused layers appear once)."""
        seen = {}
        for node in self.nodes:
            seen.setdefault(id(node.layer), node.layer)
        return list(seen.values())

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise invalid("name", f"one of {[layer.name for layer in self.layers]}", name)

    @property
    def built(self):
        return bool(self.nodes) and all(layer.built for layer in self.layers)

    @property
    def output_shape(self):
        return self.nodes[-1].layer.output_shape if self.nodes else None

    # ----- parameters ----------------------------------------------------------------------------
    def _init_params(self, seed=None):
        """Draw every layer's weights from `seed`. They are drawn on the host (NumPy backend) and
        moved to the device: the same seed gives bit-identical weights on every backend, and JAX
        need not compile each random operation of the initialisation."""
        self.seed = random.next_seed() if seed is None else seed
        target = _backend()
        with use_backend("numpy") as host:
            base = random.key(self.seed)
            drawn = {layer.name: layer.init(random.fold_in(base, i)) for i, layer in enumerate(self.layers)
                     if layer.param_specs() and not layer.params}
        for layer in self.layers:
            if layer.name in drawn:
                layer.params = tree_map(lambda a: target.asarray(host.to_numpy(a)), drawn[layer.name])
        self._backend_name = target.name

    def _ensure_params(self):
        if not all(layer.params or not layer.param_specs() for layer in self.layers):
            self._init_params()

    @property
    def params(self):
        """{layer name: {param name: array}} of the layers that have parameters."""
        return {layer.name: layer.params for layer in self.layers if layer.param_specs()}

    @params.setter
    def params(self, value):
        for layer in self.layers:
            if layer.name in value:
                layer.params = value[layer.name]

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """Every layer's arrays as NumPy arrays: kernel then bias, layer by layer (Keras' order)."""
        self._require_built("get_weights")
        self._ensure_params()
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        self._require_built("set_weights")
        self._ensure_params()
        expected = sum(len(layer.param_specs()) for layer in self.layers)
        if len(weights) != expected:
            raise invalid("weights", f"a list of {expected} arrays", f"a list of {len(weights)} arrays")
        staged, start = [], 0
        for layer in self.layers:  # check every shape before changing anything
            n = len(layer.param_specs())
            for (name, (shape, _, _)), w in zip(layer.param_specs().items(), weights[start:start + n]):
                if tuple(w.shape) != tuple(shape):
                    raise invalid(f"weights ({layer.name}/{name})", f"shape {tuple(shape)}", tuple(w.shape))
            staged.append((layer, weights[start:start + n]))
            start += n
        for layer, ws in staged:
            if ws:
                layer.set_weights(ws)

    def _require_built(self, what):
        if not self.built:
            raise InvalidArgumentError(
                f"The model '{self.name}' has no input shape yet, so `{what}` cannot run. Expected a model "
                f"built from portanet.Input(shape), or one called on data first. Received: an unbuilt model")

    def _sync_backend(self):
        """Move parameters and optimizer state to the current backend if it changed since."""
        backend = _backend()
        if getattr(self, "_backend_name", backend.name) == backend.name:
            return
        from .backend import load
        old = load(self._backend_name)

        def move(a):
            return backend.asarray(old.to_numpy(a)) if hasattr(a, "shape") else a

        self.params = tree_map(move, self.params)
        if self.opt_state is not None:
            self.opt_state = tree_map(move, self.opt_state)
        self._backend_name = backend.name
        self._steps, self._totals_template = {}, None

    # ----- the pure functions --------------------------------------------------------------------
    def _forward(self, params, x, training, key):
        values, caches = [x], []
        for i, node in enumerate(self.nodes):
            layer = node.layer
            args = [values[j] for j in node.inputs]
            node_key = random.fold_in(key, i) if key is not None and getattr(layer, "needs_key", False) else None
            y, cache = layer.forward(params.get(layer.name, {}), args if layer.multi_input else args[0],
                                     training=training, key=node_key)
            values.append(y)
            caches.append(cache)
        return values[-1], caches

    def _fused(self):
        layer = self.nodes[-1].layer
        return (self.loss is not None and not self.loss.from_logits and self.loss.fused_activation is not None
                and isinstance(layer, ActivatedLayer) and layer.activation.name == self.loss.fused_activation)

    def _loss_and_grads(self, params, x, y, key):
        out, caches = self._forward(params, x, True, key)
        last, last_params = self.nodes[-1].layer, params.get(self.nodes[-1].layer.name, {})
        if self._fused():
            value, dz = self.loss.logits_forward(y, last.preactivation(caches[-1]))
            dx, g = last.backward_from_preactivation(last_params, caches[-1], dz)
        else:
            value, loss_cache = self.loss.forward(y, out)
            dx, g = last.backward(last_params, caches[-1], self.loss.backward(loss_cache))
        grads = {}
        _accumulate(grads, last.name, g)
        pending = {}
        _send(pending, self.nodes[-1].inputs, dx, last.multi_input)
        for i in range(len(self.nodes) - 2, -1, -1):
            node = self.nodes[i]
            dy = pending.pop(i + 1, None)
            if dy is None:
                continue
            dx, g = node.layer.backward(params.get(node.layer.name, {}), caches[i], dy)
            _accumulate(grads, node.layer.name, g)
            _send(pending, node.inputs, dx, node.layer.multi_input)
        for layer in self.layers:
            if layer.name in params:
                penalty, reg_grads = layer.regularization(params[layer.name])
                if reg_grads:
                    value = value + penalty
                    grads[layer.name] = {k: v + reg_grads[k] if k in reg_grads else v
                                         for k, v in grads[layer.name].items()}
        return value, out, grads

    def _stats(self, value, out, y, n):
        xp = _backend().xp
        stats = {"loss": value * n, "count": xp.asarray(float(n), dtype=out.dtype)}
        for metric in self.metrics:
            stats[metric.name] = metric.stats(y, out)
        return stats

    def _train_step(self, params, opt_state, totals, x, y, key, batch):
        if key is not None:
            key = random.fold_in(key, batch)
        value, out, grads = self._loss_and_grads(params, x, y, key)
        trainable = self._trainable_params(params)
        new_params, opt_state = self.optimizer.update(trainable, {k: grads[k] for k in trainable}, opt_state)
        params = {**params, **new_params}
        return params, opt_state, _add(totals, self._stats(value, out, y, x.shape[0]))

    def _chunk_step(self, params, opt_state, totals, x_all, y_all, index, count, key, first):
        """`count` train steps in one call, batch i being rows index[i] of data already on the
        device (JAX: one compiled fori_loop, no dispatch per batch). `first`: the batch number of
        the first step, for dropout keys."""
        xp = _backend().xp

        def body(i, carry):
            rows = index[i, ...]
            batch = first + xp.astype(xp.asarray(i), xp.uint32) if key is not None else None
            return self._train_step(*carry, xp.take(x_all, rows, axis=0), xp.take(y_all, rows, axis=0), key, batch)

        return _backend().loop(body, count, (params, opt_state, totals))

    def _eval_step(self, params, totals, x, y):
        out, caches = self._forward(params, x, False, None)
        if self._fused():  # the loss from logits, as in training
            value, _ = self.loss.logits_forward(y, self.nodes[-1].layer.preactivation(caches[-1]))
        else:
            value, _ = self.loss.forward(y, out)
        for layer in self.layers:
            if layer.name in params:
                value = value + layer.regularization(params[layer.name])[0]
        return _add(totals, self._stats(value, out, y, x.shape[0]))

    def _predict_step(self, params, x):
        return self._forward(params, x, False, None)[0]

    def _compiled(self, name, donate=True):
        """The jitted step `name` for the current backend, compiled once. Donated inputs (params,
        optimizer state, totals) are reused for the outputs on JAX and CuPy; a caller that keeps
        the previous params (TerminateOnNaN) asks for no donation."""
        backend = _backend()
        if (name, donate) not in self._steps:
            fn = getattr(self, f"_{name}_step")
            donated = {"train": (0, 1, 2), "chunk": (0, 1, 2), "eval": (1,), "predict": ()}[name] if donate else ()
            use_jit = getattr(self, "jit_compile", True)
            self._steps[name, donate] = backend.jit(fn, donate_argnums=donated) if use_jit else fn
        return self._steps[name, donate]

    # ----- user API ------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, jit_compile="auto"):
        """Choose the optimizer, the loss and the metrics (names or objects), as in Keras.
        `jit_compile`: compile the steps where the backend can ("auto": yes; JAX compiles them
        with XLA, CuPy captures each as a CUDA graph; NumPy and strict run them as they are)."""
        if jit_compile not in ("auto", True, False):
            raise invalid("jit_compile", "'auto', True or False", jit_compile)
        optimizer = optimizers.get(optimizer)
        if loss is None:
            raise invalid("loss", "a loss name or portanet.losses.Loss", loss, InvalidTypeError)
        loss = losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise invalid("metrics", "a list of metric names or Metric objects", metrics, InvalidTypeError)
        metrics = [metrics_module.get(m, loss) for m in metrics]
        names = [m.name for m in metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise invalid("metrics", "distinct metrics", names)
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics
        self.jit_compile = jit_compile is not False
        self.opt_state, self._steps, self._totals_template = None, {}, None
        self._check_loss_fits_output()

    def _check_loss_fits_output(self):
        if self.loss is None or not self.built:
            return
        out = self.output_shape
        if self.loss.fused_activation == "softmax" and len(out) > 1:
            raise invalid("loss", f"a model whose output is (None, classes) for {self.loss.name}; this model's "
                          f"output is {(None, *out)}: add a Flatten layer before the first Dense",
                          self.loss.name)
        if self.loss.label_kind == "sparse" and out[-1] < 2:
            raise invalid("loss", f"a loss for a single output such as binary_crossentropy or mse (the model "
                          f"has output shape {(None, *out)})", self.loss.name)

    def build(self, input_shape):
        """Infer every layer's shapes from the example shape `input_shape` and draw the weights."""
        if not self.built:
            raise invalid("input_shape", "a model whose graph is defined", input_shape)
        self._init_params()

    def _prepare(self, x, name="x"):
        """Validate host features (the argument called `name`), building a Sequential on its first data."""
        x = data.as_array(x, name)
        data.check_features(x, None, name)
        if not self.built:
            self._build_from_shape(tuple(x.shape[1:]))
        data.check_features(x, self.input_shape, name)
        self._ensure_params()
        self._sync_backend()
        return x

    def _build_from_shape(self, shape):
        raise invalid("x", "data for a model built from portanet.Input", shape)

    def _prepare_xy(self, x, y, check_finite=True, names=("x", "y")):
        x = self._prepare(x, names[0])
        y = data.as_array(y, names[1])
        data.check_same_length(x, y, names)
        y = data.check_labels(y, self.loss, self.output_shape, names[1])
        if check_finite:
            data.check_finite(x, names[0])
            data.check_finite(y, names[1])
        return x, y

    def _require_compiled(self, what):
        if self.optimizer is None or self.loss is None:
            raise InvalidArgumentError(
                f"You must call `compile()` before `{what}()`. Expected a compiled model. "
                f"Received: model '{self.name}' with no optimizer and loss")

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0, seed=None,
            check_finite=True):
        """Train for `epochs` epochs; returns the History. Everything is validated before training."""
        self._require_compiled("fit")
        batch_size = data.check_batch_size(batch_size)
        for name, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise invalid(name, "a non-negative int", value)
        verbose = _check_verbose(verbose)
        split = data.check_validation_split(validation_split)
        x, y = self._prepare_xy(x, y, check_finite)
        self._check_loss_fits_output()
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2,):
                raise invalid("validation_data", "a tuple (x_val, y_val)", type(validation_data).__name__,
                              InvalidTypeError)
            val = self._prepare_xy(*validation_data, check_finite, names=("validation_data[0]", "validation_data[1]"))
            train = (x, y)
        else:
            train, val = data.split_tail(x, y, split)
        callback_list = callbacks_module.CallbackList(callbacks, model=self, verbose=verbose,
                                                      epochs=epochs, steps=math.ceil(len(train[0]) / batch_size))
        if seed is None:
            seed = self.seed if self.seed is not None else data.new_seed()
        with _memory_hint(batch_size):
            return self._fit_loop(train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list, verbose)

    def _fit_loop(self, train, val, batch_size, epochs, shuffle, initial_epoch, seed, callback_list, verbose):
        backend = _backend()
        if self.opt_state is None:
            self.opt_state = _place(self.optimizer.init(self._trainable_params()))
        keep_previous = callback_list.wants_batch_logs
        step = self._compiled("train", donate=not keep_previous)
        x, y = train
        y_dtype = data.label_dtype(y, self.loss, floatx())
        key = random.key(seed)
        # The training data goes to the device once when it fits in the budget; batches are then
        # gathered there. JAX runs whole chunks of an epoch per compiled call over it.
        y_xp_dtype = getattr(backend.xp, y_dtype.name)
        on_device = x.size * backend.xp.finfo(backend.float_dtype()).bits // 8 + y.size * 8 <= self.device_data_budget
        if on_device:
            device_data = (backend.asarray(x, dtype=backend.float_dtype()), backend.asarray(y, dtype=y_xp_dtype))
        chunked = (on_device and backend.compiled_loops and self.jit_compile and not keep_previous
                   and len(x) >= batch_size)
        self.stop_training = False
        callback_list.on_train_begin()
        with backend.quiet():  # overflow is reported once, below, not as a wall of warnings
            for epoch in range(initial_epoch, epochs):
                callback_list.on_epoch_begin(epoch)
                started = time.perf_counter()
                epoch_key = random.fold_in(key, epoch) if self._needs_key() else None
                params, opt_state, totals = self.params, self.opt_state, self._zero_totals()
                progress = callback_list.progress(epoch)
                order = data.epoch_order(len(x), shuffle, seed, epoch)
                if chunked:
                    params, opt_state, totals = self._run_chunks(progress, params, opt_state, totals, device_data,
                                                                 order, batch_size, epoch_key)
                    order = order[len(order) - len(order) % batch_size:]  # the last, smaller batch
                first = (len(x) // batch_size) if chunked else 0
                for b, index in enumerate(data.batches(order, batch_size), start=first):
                    if on_device:
                        rows = backend.asarray(index)
                        xb, yb = (backend.xp.take(a, rows, axis=0) for a in device_data)
                    else:
                        xb = backend.asarray(x[index], dtype=backend.float_dtype())
                        yb = backend.asarray(y[index], dtype=y_xp_dtype)
                    batch = backend.asarray(b, dtype=backend.xp.uint32) if epoch_key is not None else None
                    before = (params, opt_state) if keep_previous else None
                    params, opt_state, new_totals = step(params, opt_state, totals, xb, yb, epoch_key, batch)
                    batch_logs = None
                    if keep_previous:
                        batch_logs = {"loss": float(backend.to_numpy(new_totals["loss"] - totals["loss"])) / len(index)}
                    totals = new_totals
                    self.params, self.opt_state = params, opt_state
                    if progress.due(b):
                        progress.update(b + 1, self._logs(totals))
                    callback_list.on_train_batch_end(b, batch_logs)
                    if self.stop_training:
                        if before is not None and not math.isfinite(batch_logs["loss"]):
                            self.params, self.opt_state = before  # keep the last finite weights
                        break
                logs = self._logs(totals)
                if val is not None:
                    logs.update({f"val_{k}": v for k, v in self._evaluate_arrays(*val, batch_size).items()})
                logs["seconds"] = time.perf_counter() - started
                progress.close(logs)
                if not math.isfinite(logs["loss"]) and not self._warned_nonfinite:
                    self._warned_nonfinite = True
                    terminated = any(isinstance(c, callbacks_module.TerminateOnNaN) for c in callback_list.callbacks)
                    advice = ("TerminateOnNaN stopped training and kept the last finite weights." if terminated
                              else "Add portanet.callbacks.TerminateOnNaN() to stop at the first bad batch and "
                                   "keep the last finite weights.")
                    warnings.warn(
                        f"The training loss became {logs['loss']} in epoch {epoch + 1}: the weights overflowed. "
                        f"The learning rate ({self.learning_rate:g}) is probably too high for this model and data "
                        f"(or the inputs are not scaled). {advice}", RuntimeWarning, stacklevel=4)
                callback_list.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        callback_list.on_train_end()
        self.history = callback_list.history
        return self.history

    def _run_chunks(self, progress, params, opt_state, totals, device_data, order, batch_size, epoch_key):
        """The full batches of one epoch, in about 20 compiled chunks (one per progress update)."""
        backend = _backend()
        steps = len(order) // batch_size
        per_chunk = -(-steps // 20)
        index = data.batch_matrix(order, batch_size, steps, per_chunk)  # (chunks, per_chunk, batch)
        chunk = self._compiled("chunk")
        for c in range(index.shape[0]):
            count = min(per_chunk, steps - c * per_chunk)
            params, opt_state, totals = chunk(
                params, opt_state, totals, *device_data, backend.asarray(index[c]),
                backend.asarray(count, dtype=backend.xp.int32), epoch_key,
                backend.asarray(c * per_chunk, dtype=backend.xp.uint32) if epoch_key is not None else None)
            self.params, self.opt_state = params, opt_state
            if progress.bar is not None:
                progress.update(c * per_chunk + count, self._logs(totals))
        return params, opt_state, totals

    def _needs_key(self):
        return any(getattr(layer, "needs_key", False) for layer in self.layers)

    def _trainable_params(self, params=None):
        params = self.params if params is None else params
        names = {layer.name for layer in self.layers if layer.trainable}
        return {name: p for name, p in params.items() if name in names}

    def _zero_totals(self):
        """Zero running sums of the loss and of every metric's statistics (shapes probed once)."""
        xp, dtype = _backend().xp, _backend().float_dtype()
        if self._totals_template is None:
            x = xp.zeros((1, *self.input_shape), dtype=dtype)
            out = self._predict_step(self.params, x)
            sparse = self.loss.label_kind == "sparse"
            y = xp.zeros(out.shape[:-1], dtype=xp.int32) if sparse else xp.zeros(out.shape, dtype=dtype)
            self._totals_template = {"loss": out[0, ...], "count": out[0, ...],
                                     **{m.name: m.stats(y, out) for m in self.metrics}}
            self._totals_template["loss"] = self._totals_template["count"] = xp.zeros((), dtype=dtype)
        return _place(tree_map(lambda a: xp.zeros(a.shape, dtype=dtype), self._totals_template))

    def _logs(self, totals):
        """Host floats from device totals: the one host synchronisation of a progress update."""
        backend = _backend()
        count = totals["count"]
        logs = {"loss": totals["loss"] / count}
        for metric in self.metrics:
            logs[metric.name] = metric.result(totals[metric.name])
        return {k: float(backend.to_numpy(v)) for k, v in logs.items()}

    def _evaluate_arrays(self, x, y, batch_size):
        backend = _backend()
        step = self._compiled("eval")
        y_dtype = data.label_dtype(y, self.loss, floatx())
        totals = self._zero_totals()
        for index in data.batches(data.epoch_order(len(x), False, 0, 0), batch_size):
            totals = step(self.params, totals, backend.asarray(x[index], dtype=backend.float_dtype()),
                          backend.asarray(y[index], dtype=getattr(backend.xp, y_dtype.name)))
        return self._logs(totals)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, check_finite=True):
        """Loss and metrics on (x, y): a list [loss, *metrics] (a float without metrics), or a dict."""
        self._require_compiled("evaluate")
        batch_size = data.check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x, y = self._prepare_xy(x, y, check_finite)
        with _memory_hint(batch_size):
            logs = self._evaluate_arrays(x, y, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for x, as a NumPy array (batched, inference mode)."""
        batch_size = data.check_batch_size(batch_size)
        x = self._prepare(x)
        backend = _backend()
        step = self._compiled("predict")
        with _memory_hint(batch_size):
            outputs = [backend.to_numpy(step(self.params, backend.asarray(x[index], dtype=backend.float_dtype())))
                       for index in data.batches(data.epoch_order(len(x), False, 0, 0), batch_size)]
        return data.concatenate(outputs)

    def __call__(self, x, training=False):
        """Forward pass on an array already on the backend (no batching, no validation)."""
        if not self.built:
            self._build_from_shape(tuple(x.shape[1:]))
        self._ensure_params()
        return self._forward(self.params, x, training, random.key(0) if training else None)[0]

    # ----- learning rate, summary, config, saving -----------------------------------------------
    @property
    def learning_rate(self):
        """The optimizer's current learning rate (a float)."""
        state = self.opt_state if self.opt_state is not None else self.optimizer.init(self._trainable_params())
        return float(_backend().to_numpy(self.optimizer.learning_rate_value(state)))

    @learning_rate.setter
    def learning_rate(self, value):
        if self.opt_state is None:
            self.opt_state = self.optimizer.init(self._trainable_params())
        self.opt_state = _place(self.optimizer.with_learning_rate(self.opt_state, value))

    def summary(self, print_fn=print):
        """Layer names, types, output shapes and parameter counts, as Keras prints them."""
        self._require_built("summary")
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)),
                 f"{layer.count_params():,}") for layer in self.layers]
        if not isinstance(self, Sequential):
            rows.insert(0, (f"{self.input_layer.name} (InputLayer)", str((None, *self.input_shape)), "0"))
        widths = (max(28, *(len(r[0]) + 2 for r in rows)), max(26, *(len(r[1]) + 2 for r in rows)), 12)
        line = "_" * sum(widths)
        total = self.count_params()
        trainable = sum(layer.count_params() for layer in self.layers if layer.trainable)
        out = [f'Model: "{self.name}"', line,
               f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}",
               "=" * sum(widths)]
        for i, (a, b, c) in enumerate(rows):
            out.append(f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}")
            out.append("_" * sum(widths) if i < len(rows) - 1 else "=" * sum(widths))
        out += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}", line]
        print_fn("\n".join(out))

    def get_config(self):
        layer_index = {id(layer): i for i, layer in enumerate(self.layers)}
        return {
            "name": self.name,
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                       for layer in self.layers],
            "nodes": [{"layer": layer_index[id(node.layer)], "inputs": list(node.inputs)} for node in self.nodes],
        }

    def save(self, filepath, include_optimizer=True):
        """Write the architecture, the weights (and the optimizer) to one safetensors file, atomically."""
        from . import io
        io.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath):
        from . import io
        io.save_model(self, filepath, include_optimizer=False, weights_only=True)

    def load_weights(self, filepath):
        from . import io
        io.load_weights(self, filepath)


class Sequential(Model):
    """A plain stack of layers: `Sequential([Input((784,)), Dense(40, activation="relu"), ...])`."""

    def __init__(self, layers=None, name=None):
        super().__init__(name=name)
        self._stack, self._input = [], None
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise invalid("layers", "a list of layers", layers, InvalidTypeError)
            for layer in layers:
                self.add(layer)

    def add(self, layer):
        """Append a layer (or a portanet.Input declaring the example shape)."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            if self._stack or self._input is not None:
                raise invalid("layer", "an Input only as the first entry", layer)
            self._input = layer
            return
        if isinstance(layer, InputLayer):
            return self.add(SymbolicTensor(layer.shape, layer))
        if not isinstance(layer, Layer):
            raise invalid("layer", "a portanet layer", layer, InvalidTypeError)
        if layer.multi_input:
            raise invalid("layer", "a single-input layer (use the functional Model for Add/Concatenate)",
                          layer.name)
        self._stack.append(layer)
        shape = self._input.shape if self._input is not None else self._stack[0].declared_input_shape
        if shape is not None:
            self._build_from_shape(shape, init=False)

    @property
    def layers(self):
        return list(self._stack)

    def pop(self):
        layer = self._stack.pop()
        self.nodes = self.nodes[:len(self._stack)]
        return layer

    def _build_from_shape(self, shape, init=True):
        if not self._stack:
            raise invalid("layers", "at least one layer before the model is used", [])
        if self._input is None:
            self._input = SymbolicTensor(shape, InputLayer(shape, name=unique_name("input_layer")))
        tensor = self._input
        for layer in self._stack:
            tensor = layer(tensor)
        self._set_graph(self._input, tensor)
        if init:
            self._check_loss_fits_output()


def _accumulate(grads, name, g):
    if not g:
        return
    if name in grads:  # a reused layer: gradients of every call add up
        grads[name] = {k: grads[name][k] + v for k, v in g.items()}
    else:
        grads[name] = g


def _send(pending, inputs, dx, multi):
    """Route dL/dx back to the nodes that produced the inputs, summing at fan-out."""
    for source, d in zip(inputs, dx if multi else [dx]):
        if source == 0 or d is None:
            continue
        pending[source] = pending[source] + d if source in pending else d


def _place(tree):
    """Every array of `tree` on the backend's device (JAX: committed, so jit never retraces)."""
    return tree_map(_backend().asarray, tree)


def _add(totals, stats):
    return tree_map(lambda a, b: a + b, totals, stats)


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise invalid("verbose", "0, 1, 2 or 'auto'", verbose)
    return verbose


@contextlib.contextmanager
def _memory_hint(batch_size):
    """Turn the device's out-of-memory error inside the block into one that names the batch size."""
    try:
        yield
    except DeviceMemoryError:
        raise
    except Exception as error:
        backend = _backend()
        if not backend.is_out_of_memory(error):
            raise
        raise DeviceMemoryError(
            f"The {backend.name} device ({backend.device}) ran out of memory. Expected a batch_size whose "
            f"activations and gradients fit in device memory. Received: batch_size={batch_size}; try a "
            f"smaller one, e.g. batch_size={max(1, batch_size // 2)}.") from error

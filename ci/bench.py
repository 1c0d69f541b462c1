"""Training speed, memory and accuracy: portanet on each backend against PyTorch, Keras 3 and JAX+optax.

    python ci/bench.py                                  # every model, every installed framework (CPU)
    python ci/bench.py --quick                          # the CI smoke run: 256 samples, 1 timed epoch
    python ci/bench.py --models mlp-wide --repeats 5 --threads 1 --json bench.json
    python ci/bench.py --backends numpy,jax,strict --peers torch
    python ci/bench.py --device gpu                     # portanet-cupy(-eager), -jax, -torch; torch(-compile)
    python ci/bench.py --devices 4                      # also DataParallel over 4 devices

Every framework trains the same model on the same data (Fashion-MNIST, pixels scaled to [0, 1],
LeNet-5's input zero-padded to 1x32x32) with the same batch size, the same optimizer
(Adam, learning rate 1e-3, epsilon 1e-7; Keras applies epsilon in its "epsilon hat" form) and
the same initial weights: portanet's, from model.get_weights(), copied into each peer (PyTorch
Linear weights transposed; Keras conv kernels as (kh, kw, in, out) and its first Dense kernel's
rows reordered for a channels-last Flatten). The training loss is softmax cross-entropy from the
logits everywhere (portanet fuses its softmax output with the loss). A line checks the copy:
each framework's loss on the first 256 training samples before training.

| model | layers (ReLU, softmax output) | batch |
| --- | --- | --- |
| lenet | conv 6@5x5, maxpool 2, conv 16@5x5, maxpool 2, 120, 84, 10 | 128 |
| mlp | 784-40-40-40-10 | 50 |
| mlp-wide | 784-1024-1024-10 | 256 |

| framework | what runs |
| --- | --- |
| portanet-<backend> | model.fit, NCHW (--backends: numpy, jax, torch, strict on CPU; cupy, jax, torch on GPU) |
| portanet-torch | the torch backend: PyTorch's kernels, portanet's hand-written backprop (against torch's autograd) |
| portanet-jax-dp | --devices N: DataParallel over N devices (simulated ones on a CPU: the overhead only) |
| portanet-cupy-eager | the same without CUDA graphs (compile(jit_compile=False)) |
| torch | PyTorch eager, a hand-written loop, NCHW |
| torch-compile | the same loop over torch.compile(model) |
| keras-jax | Keras 3 model.fit on its JAX backend, channels-last |
| jax-optax | a hand-written jax.jit train step (data on the device, gathered per batch) and optax.adam |

Protocol. Each framework runs in its own long-lived subprocess (KERAS_BACKEND is set before Keras
is imported), which loads the data (prepared once by this script, in the layout that framework
uses) and the weights, then trains one epoch per "epoch" command received over a pipe. portanet
and Keras run one model.fit over every epoch, a callback waiting for each command, so that fit's
own setup is paid once, as in a real run. Every framework first trains one untimed warm-up epoch
(it includes compilation), one framework at a time; then come --repeats rounds, each training one
epoch in every framework in turn (the first framework of a round rotates), so that they share
the machine's state alike and no timed epoch pays a process start. The table shows, per model
and framework: the warm-up epoch's seconds, seconds per epoch (median of the rounds), samples/s,
steps/s, peak memory (the RSS high-water mark of the subprocess, from resource.getrusage: imports,
data and training), test accuracy after the last epoch, and in parentheses the ratio of each
figure to PyTorch's in the same run. For models made only of Dense layers, "GEMM peak" is the
training FLOP rate (6 x multiply-adds of the dense layers per sample) as a percentage of the
float32 matrix-multiply rate measured by this script (NumPy, 2048x2048 @ 2048x2048, best of 5).

--threads N (default: the cores this process may use) sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS and PORTANET_NUM_THREADS for every process (portanet's own choice would count
the bench's other workers as other work; with PORTANET_ADAPT_THREADS=1 its numpy backend runs each
step on N BLAS threads or fewer, whichever is fastest as it runs), torch.set_num_threads(N) and, below the core count, pins
every process to N cores (XLA sizes its thread pools from the CPU affinity; N = 1 also turns off
XLA's multi-threaded Eigen). A 1-minute load average above 0.5 is reported before the start: other
work skews multi-threaded timings badly on a small machine.

--device gpu times portanet-cupy (its step replayed as a CUDA graph), portanet-cupy-eager,
portanet-jax, torch and torch-compile on CUDA (default models lenet and mlp-wide; steps/s is the
column to read). JAX then allocates GPU memory as needed rather
than preallocating most of it, as the frameworks' processes share the GPU. A framework that finds
no GPU stops the run with a message saying so.

--quick is the CI smoke run: --limit 256 (training and test samples) and --repeats 1; it prints
the table and never fails on time. --json FILE writes every figure (and each epoch's time and
training loss). A framework that is not installed is skipped with a line saying so.
"""
import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = 0
LEARNING_RATE = 1e-3
EPSILON = 1e-7
EVAL_BATCH = 256  # predictions; the first batch of training samples also checks the initial weights
QUICK_LIMIT = 256  # whole batches of lenet and mlp-wide: no second compilation for a smaller last batch
STARTED = time.perf_counter()

MODELS = {
    "lenet": {"title": "LeNet-5: conv 6@5x5, maxpool 2, conv 16@5x5, maxpool 2, 120, 84, 10", "batch": 128,
              "input": (1, 32, 32),
              "layers": [("conv", 6, 5), ("pool", 2), ("conv", 16, 5), ("pool", 2), ("flatten",),
                         ("dense", 120), ("dense", 84), ("dense", 10)]},
    "mlp": {"title": "MLP 784-40-40-40-10", "batch": 50, "input": (784,),
            "layers": [("dense", 40), ("dense", 40), ("dense", 40), ("dense", 10)]},
    "mlp-wide": {"title": "MLP 784-1024-1024-10", "batch": 256, "input": (784,),
                 "layers": [("dense", 1024), ("dense", 1024), ("dense", 10)]},
}
DEFAULTS = {  # device: (models, portanet backends, peers)
    "cpu": ("lenet,mlp,mlp-wide", "numpy,jax,torch", "torch,keras-jax,jax-optax"),
    "gpu": ("lenet,mlp-wide", "cupy,cupy-eager,jax,torch", "torch,torch-compile"),
}
BACKENDS = {"cpu": ("numpy", "jax", "strict", "torch", "jax-dp"),
            "gpu": ("cupy", "cupy-eager", "jax", "torch", "jax-dp")}
PEERS = {"torch": ("torch",), "torch-compile": ("torch",), "keras-jax": ("keras", "jax"),
         "jax-optax": ("jax", "optax")}
VERSIONS = ("numpy", "portanet", "jax", "jaxlib", "torch", "keras", "optax", "cupy-cuda12x", "cupy-cuda13x",
            "array-api-strict")


def walk(spec):
    """Each layer of a model spec, with its input shape: (C, H, W) or (features,)."""
    shape = spec["input"]
    for layer in spec["layers"]:
        yield layer, shape
        kind = layer[0]
        if kind == "conv":
            shape = (layer[1], shape[1] - layer[2] + 1, shape[2] - layer[2] + 1)
        elif kind == "pool":
            shape = (shape[0], shape[1] // layer[1], shape[2] // layer[1])
        elif kind == "flatten":
            shape = (math.prod(shape),)
        else:
            shape = (layer[1],)


def dense_macs(spec):
    """Multiply-adds per sample of a model made only of Dense layers (None for any other)."""
    if any(layer[0] != "dense" for layer in spec["layers"]):
        return None
    return sum(shape[0] * layer[1] for layer, shape in walk(spec))


def portanet_model(spec):
    import portanet as pn
    from portanet.layers import Conv2D, Dense, Flatten, MaxPool2D
    layers = [pn.Input(spec["input"])]
    for i, (kind, *args) in enumerate(spec["layers"]):
        if kind == "conv":
            layers.append(Conv2D(args[0], args[1], activation="relu"))
        elif kind == "pool":
            layers.append(MaxPool2D(args[0]))
        elif kind == "flatten":
            layers.append(Flatten())
        else:
            layers.append(Dense(args[0], activation="softmax" if i == len(spec["layers"]) - 1 else "relu"))
    return pn.Sequential(layers)


# ----- the workers: one framework training one model in its own process ---------------------------

class Pipe:
    """The worker's end: commands arrive on stdin; replies, one JSON object a line, go out on a
    private copy of stdout (whatever a library prints goes to stderr, the worker's log)."""

    def __init__(self):
        self.out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def reply(self, **fields):
        self.out.write(json.dumps(fields) + "\n")

    def expect(self, command):
        line = sys.stdin.readline().strip()
        if line != command:
            raise SystemExit(f"worker: expected the command {command!r}, received {line!r}")

    def begin_epoch(self):
        self.expect("epoch")
        self.started = time.perf_counter()

    def end_epoch(self, loss):
        self.reply(seconds=time.perf_counter() - self.started, loss=float(loss))


def require_gpu(framework, found, what):
    if not found:
        raise SystemExit(f"{framework}: --device gpu, but {what}")


class PortanetTrainer:
    probabilities = True  # predict() gives the softmax output; the peers give logits

    def __init__(self, framework, spec, weights, device, threads):
        import portanet as pn
        name, _, variant = framework.removeprefix("portanet-").partition("-")
        backend = pn.backend.set(name)  # cupy: fails clearly without a GPU
        if device == "gpu":
            require_gpu(framework, backend.name == "cupy" or getattr(backend.device, "platform", None) == "gpu" or
                        getattr(backend.device, "type", None) == "cuda", f"{name} runs on {backend.device}")
        elif name == "torch":
            pn.backend.set("torch", device="cpu")
        self.where = str(backend.device)
        if backend.thread_report():
            self.where += f" (threads: {backend.thread_report()})"
        if backend.name == "cupy":
            import cupy
            self.where = cupy.cuda.runtime.getDeviceProperties(backend.device.id)["name"].decode()
        if variant == "dp":  # data parallel over every device (on a CPU: --devices simulated ones)
            pn.distribution.set_distribution(pn.distribution.DataParallel())
            self.where = f"{len(pn.distribution.list_devices())} x {backend.device.platform}"
        self.model = portanet_model(spec)
        self.model.compile(optimizer=pn.optimizers.Adam(LEARNING_RATE, epsilon=EPSILON),
                           loss="sparse_categorical_crossentropy", jit_compile=variant != "eager")
        self.model.set_weights(weights)
        self.batch = spec["batch"]

    def train(self, x, y, epochs, pipe):
        import portanet as pn

        class Timer(pn.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                pipe.begin_epoch()

            def on_epoch_end(self, epoch, logs=None):
                pipe.end_epoch(logs["loss"])

        self.model.fit(x, y, batch_size=self.batch, epochs=epochs, verbose=0, seed=SEED, callbacks=[Timer()])

    def predict(self, x):
        return self.model.predict(x, batch_size=EVAL_BATCH, verbose=0)


class TorchTrainer:
    probabilities = False

    def __init__(self, framework, spec, weights, device, threads):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        if device == "gpu":
            require_gpu(framework, torch.cuda.is_available(), "torch.cuda.is_available() is False")
        self.torch, self.batch = torch, spec["batch"]
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        self.where = torch.cuda.get_device_name() if device == "gpu" else "cpu"
        modules = []
        for i, (layer, shape) in enumerate(walk(spec)):
            kind, last = layer[0], i == len(spec["layers"]) - 1
            if kind == "conv":
                modules += [nn.Conv2d(shape[0], layer[1], layer[2]), nn.ReLU()]
            elif kind == "pool":
                modules.append(nn.MaxPool2d(layer[1]))
            elif kind == "flatten":
                modules.append(nn.Flatten())
            else:
                modules += [nn.Linear(shape[0], layer[1])] + ([] if last else [nn.ReLU()])
        self.net = nn.Sequential(*modules)
        weighted = [m for m in self.net if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            for module, kernel, bias in zip(weighted, weights[::2], weights[1::2]):
                module.weight.copy_(torch.from_numpy(kernel if isinstance(module, nn.Conv2d) else kernel.T))
                module.bias.copy_(torch.from_numpy(bias))
        self.net.to(self.device)
        self.step_net = torch.compile(self.net) if framework == "torch-compile" else self.net
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE, eps=EPSILON)

    def train(self, x, y, epochs, pipe):
        torch, cross_entropy = self.torch, self.torch.nn.functional.cross_entropy
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y.astype("int64")).to(self.device)
        generator = torch.Generator().manual_seed(SEED)
        self.net.train()
        for _ in range(epochs):
            pipe.begin_epoch()
            total = torch.zeros((), device=self.device)
            for index in torch.randperm(len(x), generator=generator).to(self.device).split(self.batch):
                self.optimizer.zero_grad(set_to_none=True)
                loss = cross_entropy(self.step_net(x[index]), y[index])
                loss.backward()
                self.optimizer.step()
                total += loss.detach() * len(index)
            pipe.end_epoch(total.item() / len(x))  # .item() waits for the GPU

    def predict(self, x):
        self.net.eval()
        with self.torch.no_grad():
            return self.torch.cat([self.net(self.torch.from_numpy(x[i:i + EVAL_BATCH]).to(self.device)).cpu()
                                   for i in range(0, len(x), EVAL_BATCH)]).numpy()


def keras_weights(spec, weights):
    """portanet's weights (NCHW, kernels (out, in, kh, kw)) for a channels-last Keras model."""
    out, arrays, flattened = [], iter(weights), None
    for layer, shape in walk(spec):
        if layer[0] in ("conv", "dense"):
            kernel, bias = next(arrays), next(arrays)
            if layer[0] == "conv":
                kernel = kernel.transpose(2, 3, 1, 0)
            elif flattened is not None:  # rows (c, h, w) -> (h, w, c)
                kernel = kernel.reshape(*flattened, -1).transpose(1, 2, 0, 3).reshape(kernel.shape)
            out += [kernel, bias]
        flattened = shape if layer[0] == "flatten" else None
    return out


class KerasTrainer:
    probabilities = False

    def __init__(self, framework, spec, weights, device, threads):
        os.environ["KERAS_BACKEND"] = "jax"
        import jax
        import keras
        if device == "gpu":
            require_gpu(framework, jax.default_backend() == "gpu", f"JAX runs on {jax.devices()[0]}")
        self.where, self.keras, self.batch = str(jax.devices()[0]), keras, spec["batch"]
        keras.utils.set_random_seed(SEED)
        shape = spec["input"]
        layers = [keras.Input(shape[1:] + shape[:1] if len(shape) == 3 else shape)]
        for i, (kind, *args) in enumerate(spec["layers"]):
            if kind == "conv":
                layers.append(keras.layers.Conv2D(args[0], args[1], activation="relu"))
            elif kind == "pool":
                layers.append(keras.layers.MaxPooling2D(args[0]))
            elif kind == "flatten":
                layers.append(keras.layers.Flatten())
            else:
                layers.append(keras.layers.Dense(args[0], activation=None if i == len(spec["layers"]) - 1
                                                 else "relu"))
        self.model = keras.Sequential(layers)
        self.model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, epsilon=EPSILON),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.model.set_weights(keras_weights(spec, weights))

    def train(self, x, y, epochs, pipe):
        class Timer(self.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                pipe.begin_epoch()

            def on_epoch_end(self, epoch, logs=None):
                pipe.end_epoch(logs["loss"])

        self.model.fit(x, y, batch_size=self.batch, epochs=epochs, verbose=0, callbacks=[Timer()])

    def predict(self, x):
        return self.model.predict(x, batch_size=EVAL_BATCH, verbose=0)


class JaxTrainer:
    probabilities = False

    def __init__(self, framework, spec, weights, device, threads):
        import jax
        import jax.numpy as jnp
        import optax
        if device == "gpu":
            require_gpu(framework, jax.default_backend() == "gpu", f"JAX runs on {jax.devices()[0]}")
        self.jax, self.where, self.batch = jax, str(jax.devices()[0]), spec["batch"]
        layers = spec["layers"]

        def forward(params, x):
            arrays = iter(params)
            for i, (kind, *args) in enumerate(layers):
                if kind == "conv":
                    kernel, bias = next(arrays)
                    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
                    x = jax.nn.relu(x + bias[None, :, None, None])
                elif kind == "pool":
                    window = (1, 1, args[0], args[0])
                    x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "VALID")
                elif kind == "flatten":
                    x = x.reshape(x.shape[0], -1)
                else:
                    kernel, bias = next(arrays)
                    x = x @ kernel + bias
                    x = x if i == len(layers) - 1 else jax.nn.relu(x)
            return x

        def loss(params, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()

        optimizer = optax.adam(LEARNING_RATE, eps=EPSILON)

        def step(params, opt_state, total, x, y, index):
            value, grads = jax.value_and_grad(loss)(params, x[index], y[index])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, total + value * index.shape[0]

        self.params = [(jnp.asarray(k), jnp.asarray(b)) for k, b in zip(weights[::2], weights[1::2])]
        self.opt_state = optimizer.init(self.params)
        self.step = jax.jit(step, donate_argnums=(0, 1, 2))
        self.forward = jax.jit(forward)

    def train(self, x, y, epochs, pipe):
        import numpy as np
        x, y = self.jax.device_put(x), self.jax.device_put(y)
        rng = np.random.default_rng(SEED)
        for _ in range(epochs):
            pipe.begin_epoch()
            order, total = rng.permutation(len(x)), self.jax.numpy.zeros(())
            for start in range(0, len(x), self.batch):
                self.params, self.opt_state, total = self.step(self.params, self.opt_state, total, x, y,
                                                               order[start:start + self.batch])
            pipe.end_epoch(float(total) / len(x))  # float() waits for the last step

    def predict(self, x):
        import numpy as np
        return np.concatenate([np.asarray(self.forward(self.params, x[i:i + EVAL_BATCH]))
                               for i in range(0, len(x), EVAL_BATCH)])


def trainer_class(framework):
    if framework.startswith("portanet-"):
        return PortanetTrainer
    return {"torch": TorchTrainer, "torch-compile": TorchTrainer, "keras-jax": KerasTrainer,
            "jax-optax": JaxTrainer}[framework]


def layout(framework, spec):
    """How a framework takes the images: Keras is channels-last, everyone else NCHW."""
    return "nhwc" if framework == "keras-jax" and len(spec["input"]) == 3 else "default"


def worker(config):
    """Serve the driver: "ready" once set up, one reply per "epoch", then the final figures."""
    import numpy as np
    pipe = Pipe()
    framework, spec = config["framework"], MODELS[config["model"]]
    if config["device"] == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        if framework.endswith("-dp"):  # the host split into simulated devices (before JAX starts)
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       f" --xla_force_host_platform_device_count={config['devices']}").strip()
    data = np.load(config["data"])
    x, y, x_test, y_test = (data[k] for k in ("x", "y", "x_test", "y_test"))
    with np.load(config["weights"]) as arrays:
        weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    trainer = trainer_class(framework)(framework, spec, weights, config["device"], config["threads"])
    scores = trainer.predict(x[:EVAL_BATCH]).astype(np.float64)  # the loss before training, from the outputs
    if trainer.probabilities:
        log_p = np.log(scores)
    else:
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    pipe.reply(initial_loss=-float(np.mean(log_p[np.arange(len(scores)), y[:EVAL_BATCH]])), device=trainer.where)
    trainer.train(x, y, config["epochs"], pipe)
    pipe.expect("finish")
    accuracy = float(np.mean(np.argmax(trainer.predict(x_test), axis=-1) == y_test))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    pipe.reply(accuracy=accuracy, peak_rss_mb=peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10))


# ----- the driver --------------------------------------------------------------------------------

class BenchError(Exception):
    pass


class Worker:
    """The driver's handle on one worker process; its stderr goes to a log shown if it fails."""

    def __init__(self, framework, config, log):
        self.name, self.log = framework, open(log, "w+")
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(config)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def read(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.log.seek(0)
            tail = "".join(self.log.readlines()[-15:])
            raise BenchError(f"{self.name} stopped (exit code {self.process.returncode}):\n{tail}")
        return json.loads(line)

    def ask(self, command):
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # read() reports why
        return self.read()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def set_threads(threads):
    """The same thread settings for this process and every worker (they inherit them), portanet's
    numpy backend included: its own choice would count the bench's other workers as other work."""
    if threads < usable_cores() and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "PORTANET_NUM_THREADS"):
        os.environ[name] = str(threads)
    if threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    found = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def gemm_peak(threads, n=2048, tries=5):
    """float32 FLOP/s of NumPy's n x n matrix product on `threads` BLAS threads (best of `tries`;
    set here, since portanet's numpy backend, once created, sets BLAS's threads to its own choice)."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(SEED)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    best = math.inf
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(tries):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def prepare(model, dataset, frameworks, limit, folder):
    """Write the model's data (each layout its frameworks need) and portanet's initial weights."""
    import numpy as np
    import portanet as pn
    spec = MODELS[model]
    (x, y), (x_test, y_test) = dataset

    def features(images):
        images = images[:limit].astype(np.float32) / 255
        if len(spec["input"]) == 3:
            return np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None]
        return images.reshape(len(images), -1)

    base = {"x": features(x), "y": y[:limit].astype(np.int32),
            "x_test": features(x_test), "y_test": y_test[:limit].astype(np.int32)}
    paths = {}
    for name in {layout(f, spec) for f in frameworks}:
        arrays = base if name == "default" else {
            **base, "x": base["x"].transpose(0, 2, 3, 1).copy(), "x_test": base["x_test"].transpose(0, 2, 3, 1).copy()}
        paths[name] = folder / f"{model}-{name}.npz"
        np.savez(paths[name], **arrays)
    pn.set_seed(SEED)
    weights = folder / f"{model}-weights.npz"
    np.savez(weights, *portanet_model(spec).get_weights())
    return paths, weights, len(base["x"]), len(base["x_test"])


def run_model(model, dataset, frameworks, args, folder):
    """Warm-up, then args.repeats alternating rounds: (one result dict per framework that ran to
    the end, {framework: why it stopped} for the others)."""
    spec = MODELS[model]
    data, weights, n_train, n_test = prepare(model, dataset, frameworks, args.limit, folder)
    workers, results, failed = {}, {}, {}

    def each(names, command, record):
        """Send `command` to each live worker of `names`; a worker that stops is dropped, noted."""
        for f in names:
            if f in failed:
                continue
            try:
                record(f, workers[f].ask(command) if command else workers[f].read())
            except BenchError as error:
                failed[f] = str(error)
                print(f"bench: {model}: {error}", file=sys.stderr, flush=True)

    try:
        for f in frameworks:
            config = {"framework": f, "model": model, "device": args.device, "threads": args.threads,
                      "devices": args.devices, "epochs": 1 + args.repeats, "data": str(data[layout(f, spec)]),
                      "weights": str(weights)}
            workers[f] = Worker(f, config, folder / f"{model}-{f}.log")
        progress(f"{model}: starting {len(frameworks)} workers")
        each(frameworks, None, lambda f, ready: results.__setitem__(f, {
            "model": model, "framework": f, "train_samples": n_train, "test_samples": n_test,
            "batch_size": spec["batch"], **ready}))
        progress(f"{model}: warm-up epoch")
        each(frameworks, "epoch", lambda f, warm: results[f].update(
            warmup_seconds=warm["seconds"], epoch_seconds=[], train_loss=[warm["loss"]]))
        for r in range(args.repeats):
            progress(f"{model}: round {r + 1}/{args.repeats}")
            order = frameworks[r % len(frameworks):] + frameworks[:r % len(frameworks)]
            each(order, "epoch", lambda f, epoch: (results[f]["epoch_seconds"].append(epoch["seconds"]),
                                                   results[f]["train_loss"].append(epoch["loss"])))
        progress(f"{model}: test accuracy")
        each(frameworks, "finish", lambda f, final: results[f].update(final))
    finally:
        for w in workers.values():
            w.close()
    results = {f: r for f, r in results.items() if f not in failed}
    for r in results.values():
        r["seconds_per_epoch"] = statistics.median(r["epoch_seconds"])
        r["samples_per_s"] = n_train / r["seconds_per_epoch"]
        r["steps_per_s"] = math.ceil(n_train / spec["batch"]) / r["seconds_per_epoch"]
        macs = dense_macs(spec)
        r["gemm_peak_percent"] = (100 * 6 * macs * r["samples_per_s"] / args.gemm_peak
                                  if macs and args.gemm_peak else None)
    if "torch" in results:
        torch = results["torch"]
        for r in results.values():
            r["vs_torch"] = {k: r[k] / torch[k] for k in RATIOS}
    return list(results.values()), failed


RATIOS = ("seconds_per_epoch", "samples_per_s", "peak_rss_mb", "accuracy")
COLUMNS = (  # header, key, format, width
    ("warm-up s", "warmup_seconds", "{:.3g}", 10), ("s/epoch", "seconds_per_epoch", "{:.3g}", 16),
    ("samples/s", "samples_per_s", "{:.0f}", 16), ("steps/s", "steps_per_s", "{:.1f}", 9),
    ("peak RSS MB", "peak_rss_mb", "{:.0f}", 14), ("test acc", "accuracy", "{:.4f}", 16),
    ("GEMM peak", "gemm_peak_percent", "{:.1f}%", 10))


def table(model, rows, repeats):
    spec = MODELS[model]
    first = rows[0]
    lines = [f"\n{model}: {spec['title']}; batch {spec['batch']}; {first['train_samples']} training, "
             f"{first['test_samples']} test samples; median of {repeats} epoch(s)"
             + ("; in parentheses: the ratio to torch" if "vs_torch" in first else ""),
             f"  on {', '.join(sorted({r['device'] for r in rows}))}"]
    losses = [r["initial_loss"] for r in rows]
    lines.append(f"  loss before training (first {min(EVAL_BATCH, first['train_samples'])} samples): "
                 f"{min(losses):.5f} .. {max(losses):.5f}"
                 + ("  WARNING: the frameworks do not start from the same weights"
                    if max(losses) - min(losses) > 1e-3 else ""))
    lines.append(f"{'framework':16}" + "".join(f"{h:>{w}}" for h, _, _, w in COLUMNS))
    for r in rows:
        cells = []
        for _, key, fmt, width in COLUMNS:
            cell = "-" if r[key] is None else fmt.format(r[key])
            if key in RATIOS and "vs_torch" in r:
                cell += f" ({r['vs_torch'][key]:.2f}x)"
            cells.append(f"{cell:>{width}}")
        lines.append(f"{r['framework']:16}" + "".join(cells))
    return "\n".join(lines)


def progress(message):
    print(f"bench: {time.perf_counter() - STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)


def frameworks_to_run(args):
    """The frameworks asked for that are installed, and a line for each one skipped."""
    import portanet as pn
    run, skipped = [], []
    for backend in filter(None, args.backends.split(",")):
        if pn.backend.installed(backend.partition("-")[0]):
            run.append(f"portanet-{backend}")
        else:
            skipped.append(f"portanet-{backend}: skipped, not installed: {pn.backend.KNOWN[backend.partition('-')[0]][0]}")
    for peer in filter(None, args.peers.split(",")):
        missing = [m for m in PEERS[peer] if importlib.util.find_spec(m) is None]
        if missing:
            skipped.append(f"{peer}: skipped, not installed: {', '.join(missing)}")
        else:
            run.append(peer)
    return run, skipped


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:7]))
    parser.add_argument("--models", help="comma-separated, from " + ",".join(MODELS)
                        + f" (default: {DEFAULTS['cpu'][0]}; on GPU {DEFAULTS['gpu'][0]})")
    parser.add_argument("--backends", help=f"portanet backends (default: {DEFAULTS['cpu'][1]}; "
                        f"on GPU {DEFAULTS['gpu'][1]}; strict on request)")
    parser.add_argument("--peers", help=f"other frameworks, from {','.join(PEERS)}; '' for none "
                        f"(default: {DEFAULTS['cpu'][2]}; on GPU {DEFAULTS['gpu'][2]})")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--repeats", type=int, help="timed epochs per framework (default 3; --quick: 1)")
    parser.add_argument("--limit", type=int, help="use the first N training and test samples "
                        f"(default: all; --quick: {QUICK_LIMIT})")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="threads for every framework, portanet's numpy backend included (default: the usable "
                        "cores, %(default)s here)")
    parser.add_argument("--quick", action="store_true", help=f"CI smoke run: --limit {QUICK_LIMIT} --repeats 1")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="N busy processes (a core each) for the whole run: every framework is timed "
                             "beside the same load")
    parser.add_argument("--devices", type=int, help="also run portanet-jax-dp: DataParallel over N devices (on "
                        "a CPU, N simulated ones: that shows the overhead only; on a machine with N GPUs, the "
                        "scaling), against portanet-jax on one")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    models, backends, peers = DEFAULTS[args.device]
    args.models = (args.models or models).split(",")
    args.backends = backends if args.backends is None else args.backends
    if args.devices is not None:
        if args.devices < 1:
            parser.error("--devices must be positive")
        args.backends = ",".join(dict.fromkeys([*filter(None, args.backends.split(",")), "jax", "jax-dp"]))
    args.peers = peers if args.peers is None else args.peers
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.limit is None and args.quick:
        args.limit = QUICK_LIMIT
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; expected some of {','.join(MODELS)}")
    for backend in filter(None, args.backends.split(",")):
        if backend not in BACKENDS[args.device]:
            parser.error(f"--device {args.device} runs the portanet backends {','.join(BACKENDS[args.device])}, "
                         f"not {backend!r}")
    for peer in filter(None, args.peers.split(",")):
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r}; expected some of {','.join(PEERS)}")
    if args.background_load < 0:
        parser.error("--background-load must be non-negative")
    if args.repeats < 1 or args.threads < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--repeats, --threads and --limit must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    set_threads(args.threads)  # before NumPy is imported here or anywhere below
    if args.device == "gpu":
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX must leave the GPU to the others too
    load = os.getloadavg()[0]
    frameworks, skipped = frameworks_to_run(args)
    found = versions()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores ({usable_cores()} used), "
          f"{platform.system()} {platform.release()}; device {args.device}; threads {args.threads}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    print(f"Adam(lr={LEARNING_RATE:g}, epsilon={EPSILON:g}); warm-up epoch untimed; limit {args.limit or 'none'}")
    if load > 0.5:
        print(f"WARNING: the 1-minute load average is {load:.2f} (> 0.5): something else is running, and "
              f"multi-threaded timings on {os.cpu_count()} cores will be skewed, often badly")
    for line in skipped:
        print(line)
    sys.stdout.flush()
    if not frameworks:
        print("nothing to run")
        return 0
    args.gemm_peak = gemm_peak(args.threads) if args.device == "cpu" else None
    if args.gemm_peak:
        print(f"float32 GEMM peak (NumPy 2048^3 on {args.threads} BLAS threads, best of 5): "
              f"{args.gemm_peak / 1e9:.1f} GFLOP/s", flush=True)
    from portanet.datasets import fashion_mnist
    dataset, results, failures = fashion_mnist(), [], {}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.background_load)]
    if busy:
        print(f"background load: {len(busy)} busy process(es) for the whole run", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="portanet-bench-") as folder:
            for model in args.models:
                rows, failed = run_model(model, dataset, frameworks, args, Path(folder))
                if rows:
                    print(table(model, rows, args.repeats), flush=True)
                for f, why in failed.items():
                    print(f"{model}: {why.splitlines()[0]} (the tail of its log is above, on stderr)", flush=True)
                    failures[f"{model}/{f}"] = why
                results += rows
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if args.json:
        args.json.write_text(json.dumps({
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
            "versions": found, "device": args.device, "threads": args.threads,
            "repeats": args.repeats,
            "limit": args.limit, "load_average": load, "background_load": args.background_load,
            "gemm_peak_flops": args.gemm_peak, "skipped": skipped,
            "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE, "epsilon": EPSILON},
            "results": results, "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The PyTorch backend: tensors on the CPU, CUDA (and ROCm builds) or Apple's MPS, through
array-api-compat's namespace of torch; convolution and pooling through PyTorch's own kernels.

    PORTANET_BACKEND=torch PORTANET_DEVICE=cuda:1 python train.py
    portanet.backend.set("torch", device="mps")

portanet computes its gradients itself: no tensor it makes requires grad, so autograd records
nothing, and the steps run under `torch.no_grad()`. `jit` compiles a step with `torch.compile`
where PORTANET_TORCH_COMPILE=1 (off by default: on the CPU it did not help, see the README).
"""
import contextlib
import functools
import os

import array_api_compat
import numpy as np
import torch
import torch.nn.functional as F

from portanet.backend import Backend, namespace_copy
from portanet.errors import invalid


class TorchBackend(Backend):
    name = "torch"
    version = torch.__version__
    word_mask = 0xFFFFFFFF  # CPU uint32 tensors have no + and no shifts: int64 words, masked

    def __init__(self):
        self.xp = _namespace(array_api_compat.array_namespace(torch.empty(0)), self)
        self.device = None
        self.select_device(os.environ.get("PORTANET_DEVICE") or _best_device())
        self.compiles = os.environ.get("PORTANET_TORCH_COMPILE", "0") == "1"
        self.fast = {"conv2d_forward": conv2d_forward, "conv2d_backward": conv2d_backward,
                     "maxpool2d_forward": maxpool2d_forward, "maxpool2d_backward": maxpool2d_backward,
                     "relu_backward": relu_backward, "adam": adam_update}

    @property
    def word_dtype(self):
        return torch.int64

    def select_device(self, device):
        """`device`: "cpu", "cuda", "cuda:N" or "mps"; None keeps the one in use (at start:
        PORTANET_DEVICE, else the best there is: CUDA, MPS, CPU)."""
        if device is None:
            return
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise invalid("device", "'cpu', 'cuda', 'cuda:N' or 'mps'", device) from error
        if chosen.type == "cuda" and (not torch.cuda.is_available() or (chosen.index or 0) >= torch.cuda.device_count()):
            raise invalid("device", f"a CUDA device of this machine ({torch.cuda.device_count()} found)", device)
        if chosen.type == "mps" and not torch.backends.mps.is_available():
            raise invalid("device", "an available device: this machine has no MPS (Apple GPU)", device)
        if chosen.type not in ("cpu", "cuda", "mps"):
            raise invalid("device", "'cpu', 'cuda', 'cuda:N' or 'mps'", device)
        self.device = chosen

    @property
    def has_float64(self):
        return self.device.type != "mps"   # Apple's GPU has no float64

    def asarray(self, x, dtype=None):
        """On this backend's device; uint32 (random words, step numbers) is held as int64 (see
        word_mask); host data is copied, never shared."""
        if dtype is not None and dtype == torch.float64:
            self.enable_float64()
        dtype = torch.int64 if dtype == torch.uint32 else dtype
        if not isinstance(x, (torch.Tensor, np.ndarray)) and hasattr(x, "__dlpack__"):
            try:
                x = torch.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError):
                x = np.asarray(x)
        if isinstance(x, torch.Tensor):
            x = x.to(torch.int64) if x.dtype == torch.uint32 else x
            return x.to(device=self.device, dtype=dtype)
        x = np.asarray(x)
        x = x.astype(np.int64) if x.dtype == np.uint32 else x
        return torch.tensor(x, device=self.device, dtype=dtype)

    def to_numpy(self, x):
        return x.detach().cpu().numpy()

    def jit(self, fn, **kwargs):
        if not self.compiles:
            return fn
        compiled = torch.compile(fn)

        def step(*args):
            with torch.no_grad():
                return compiled(*args)

        return step

    def is_out_of_memory(self, error):
        return isinstance(error, (MemoryError, torch.OutOfMemoryError))

    def quiet(self):
        return contextlib.nullcontext()


def _best_device():
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def _namespace(base, backend):
    """`base` (array-api-compat's torch namespace) whose creation functions make their arrays on
    the backend's device where no `device` is given, as CuPy and JAX do on theirs (torch's own
    default is the CPU, whatever the other arrays are on)."""
    def on_device(create):
        @functools.wraps(create)
        def wrapper(*args, device=None, **kwargs):
            return create(*args, device=backend.device if device is None else device, **kwargs)
        return wrapper

    return namespace_copy(base, "portanet.backends.torch.xp", **{
        name: on_device(getattr(base, name))
        for name in ("arange", "asarray", "empty", "eye", "full", "linspace", "ones", "zeros")})


# ----- fast paths: PyTorch's own kernels for portable operations (parity-tested) --------------------
def relu_backward(dy, z):
    """portanet.activations' relu_backward as one pass (PyTorch's threshold_backward)."""
    return torch.ops.aten.threshold_backward(dy, z, 0.0)


def adam_update(p, g, m, v, lr, correction_1, correction_2, beta_1, beta_2, epsilon, epsilon_hat):
    """portanet.optimizers.Adam's update of one parameter (amsgrad off) in fewer passes over
    memory (multiply-adds fused by PyTorch's kernels); the same formulas."""
    m = torch.add(m * beta_1, g, alpha=1.0 - beta_1)
    v = torch.addcmul(v * beta_2, g, g, value=1.0 - beta_2)
    if epsilon_hat:
        step = lr * torch.sqrt(correction_2) / correction_1
        return p - step * (m / (torch.sqrt(v) + epsilon)), m, v
    return p - (lr / correction_1) * (m / (torch.sqrt(v / correction_2) + epsilon)), m, v



def _symmetric(pads):
    """(top, left) where each axis is padded equally on both sides, else None."""
    (top, bottom), (left, right) = pads
    return (top, left) if top == bottom and left == right else None


def conv2d_forward(x, kernel, bias, strides, pads):
    """F.conv2d; uneven padding ("same" with an even kernel) is added first with F.pad."""
    padding = _symmetric(pads)
    if padding is None:
        (top, bottom), (left, right) = pads
        x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
    return F.conv2d(x, kernel, bias, tuple(strides), padding), (x, padding)


def conv2d_backward(kernel, payload, dz, strides, pads, need_dx, need_bias):
    x, padding = payload
    dx, dkernel, dbias = torch.ops.aten.convolution_backward(
        dz, x, kernel, [kernel.shape[0]] if need_bias else None, list(strides), list(padding), [1, 1], False, [0, 0],
        1, [need_dx, True, need_bias])
    if dx is not None and _symmetric(pads) is None:
        (top, bottom), (left, right) = pads
        dx = dx[..., top:dx.shape[-2] - bottom, left:dx.shape[-1] - right]
    return dx, dkernel, dbias


def maxpool2d_forward(x, pool, strides, pads):
    """F.max_pool2d (its gradient goes to the first maximum of a window, as portanet's)."""
    padding = _symmetric(pads)
    if padding is None or padding[0] > pool[0] // 2 or padding[1] > pool[1] // 2:
        (top, bottom), (left, right) = pads
        x, padding = F.pad(x, (left, right, top, bottom), value=-float("inf")), (0, 0)
    y, indices = F.max_pool2d(x, tuple(pool), tuple(strides), padding, return_indices=True)
    return y, (x, indices, padding)


def maxpool2d_backward(payload, dy, pool, strides, pads):
    x, indices, padding = payload
    dx = torch.ops.aten.max_pool2d_with_indices_backward(dy, x, list(pool), list(strides), list(padding), [1, 1],
                                                         False, indices)
    (top, bottom), (left, right) = pads
    if tuple(padding) == (0, 0) and (top, bottom, left, right) != (0, 0, 0, 0):  # x was padded first
        dx = dx[..., top:dx.shape[-2] - bottom, left:dx.shape[-1] - right]
    return dx


def make():
    return TorchBackend()

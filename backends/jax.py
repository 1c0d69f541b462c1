"""The JAX backend: XLA on CPU or GPU; the training step is compiled with `jax.jit`."""
import jax
import jax.numpy as jnp
import numpy as np

from portanet.backend import Backend


class JaxBackend(Backend):
    name = "jax"
    xp = jnp
    version = jax.__version__

    def __init__(self):
        self.device = jax.devices()[0]
        # Parity tests compare float32 results across backends: no reduced-precision matmuls.
        jax.config.update("jax_default_matmul_precision", "float32")
        # Fast paths for portanet.ops (parity-tested against the portable code in tests/test_conv.py).
        self.fast = {"conv2d_forward": conv2d_forward, "conv2d_backward": conv2d_backward}

    def asarray(self, x, dtype=None):
        if not isinstance(x, (jax.Array, np.ndarray)) and hasattr(x, "__dlpack__"):
            try:
                x = jnp.from_dlpack(x)
            except (BufferError, RuntimeError, TypeError):
                x = np.asarray(x)
        if isinstance(x, (list, tuple)) or np.isscalar(x):
            x = np.asarray(x)
        if dtype is not None and dtype == jnp.float64:
            self.enable_float64()
        return jax.device_put(jnp.asarray(x, dtype=dtype), self.device)

    def to_numpy(self, x):
        return np.asarray(x)

    def jit(self, fn, **kwargs):
        return jax.jit(fn, **kwargs)

    compiled_loops = True

    def loop(self, body, count, carry):
        return jax.lax.fori_loop(0, count, body, carry)

    def is_out_of_memory(self, error):
        return isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error)  # XlaRuntimeError

    def enable_float64(self):
        jax.config.update("jax_enable_x64", True)


# ----- fast paths for portanet.ops ---------------------------------------------------------------
_CONV_DIMENSIONS = ("NCHW", "OIHW", "NCHW")


def _conv(x, kernel, strides, pads):
    return jax.lax.conv_general_dilated(x, kernel, window_strides=tuple(strides), padding=tuple(pads),
                                        dimension_numbers=_CONV_DIMENSIONS)


def conv2d_forward(x, kernel, bias, strides, pads):
    """portanet.ops.conv2d_forward with XLA's convolution; the payload is x."""
    z = _conv(x, kernel, strides, pads)
    if bias is not None:
        z = z + jnp.reshape(bias, (1, -1, 1, 1))
    return z, x


def conv2d_backward(kernel, x, dz, strides, pads, need_dx=True, need_bias=True):
    """portanet.ops.conv2d_backward: the transposed convolutions XLA derives (jax.vjp)."""
    if need_dx:
        _, vjp = jax.vjp(lambda x, k: _conv(x, k, strides, pads), x, kernel)
        dx, dkernel = vjp(dz)
    else:
        _, vjp = jax.vjp(lambda k: _conv(x, k, strides, pads), kernel)
        (dkernel,), dx = vjp(dz), None
    dbias = jnp.sum(dz, axis=(0, 2, 3)) if need_bias else None
    return dx, dkernel, dbias


def make():
    return JaxBackend()

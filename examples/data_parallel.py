"""LeNet-5 on Fashion-MNIST, data parallel over every device (portanet.distribution, on JAX).

    python examples/data_parallel.py                          # every GPU of this machine
    python examples/data_parallel.py --simulate-devices 4     # a CPU split into 4 XLA devices
    python examples/data_parallel.py --quick --simulate-devices 4

Several machines (or processes): run the same command on each, with the coordinator's address,
the number of processes and each one's number (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID in the environment):

    python examples/data_parallel.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0
    python examples/data_parallel.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1

The parameters are replicated, every global batch (--batch-size, divisible by the number of
devices) is split across the devices, and XLA sums the gradients: the result is the one-device
result, up to the order of float32 sums. Only process 0 saves the model. The same flags as
examples/lenet.py otherwise.
"""
import os
import sys


def early_option(name):
    """The value of --name on the command line: JAX must see it before it starts."""
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


if early_option("--simulate-devices"):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={early_option('--simulate-devices')}")
os.environ.setdefault("PORTANET_BACKEND", "jax")

import _common as common  # noqa: E402
import portanet as pn  # noqa: E402
from lenet import lenet5, load  # noqa: E402
from portanet import plot  # noqa: E402


def main():
    parser = common.parser("data_parallel", __doc__, epochs=10, batch_size=128, images=True)
    parser.add_argument("--simulate-devices", type=common.integer(1), metavar="N",
                        help="split this machine's CPU into N XLA devices (to try it without GPUs)")
    parser.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address (several processes)")
    parser.add_argument("--num-processes", type=common.integer(1), help="processes in the run")
    parser.add_argument("--process-id", type=common.integer(0), help="this process's number")
    args = parser.parse_args()
    if args.coordinator or args.num_processes or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        pn.distribution.initialize(args.coordinator, args.num_processes, args.process_id)
    strategy = pn.distribution.DataParallel()
    pn.distribution.set_distribution(strategy)
    args = common.start(parser, args)
    print(f"data parallel over {strategy.num_devices} devices: {', '.join(pn.distribution.list_devices())}; "
          f"global batch {args.batch_size}, {args.batch_size // strategy.num_devices} per device")
    train, test, title = load(args)
    model = lenet5()
    model.compile(optimizer=pn.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = common.fit(args, model, *train, validation_split=0.1)
    common.report(args, model, history, *test)
    model.save(args.out / "lenet.pnet")
    if pn.distribution.process_index() == 0:
        common.saved(args.out / "lenet.pnet")
        common.saved(plot.history(history, args.out / "history.png", title=f"LeNet-5 on {title}, data parallel"))


if __name__ == "__main__":
    main()

"""`python -m portanet info` (or `portanet info`): version, backends, devices, float dtype, the
threads the array libraries use and the host memory settings."""
import argparse
import importlib.metadata
import os
import sys

from . import __version__, backend
from .errors import PortanetError


def _library_version(name):
    library = backend.KNOWN[name][0].replace("_", "-")
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(backend.KNOWN[name][0]).__version__


def info(out=None):
    """Print what portanet runs on; a bad PORTANET_* setting is reported in place, not raised."""
    out = out or sys.stdout
    print(f"portanet {__version__}", file=out)
    try:
        current = backend.get()
        print(f"backend: {current.name} (device: {current.device})", file=out)
        if current.thread_report() is not None:
            print(f"threads: {current.thread_report()}", file=out)
        if current.memory_report() is not None:
            print(f"memory:  {current.memory_report()}", file=out)
        if current.kernel_report() is not None:
            print(f"kernels: {current.kernel_report()}", file=out)
    except (PortanetError, ImportError) as error:
        print(f"backend: unusable: {error}", file=out)
    print(f"floatx:  {backend.floatx()}", file=out)
    print("backends:", file=out)
    for name, (library, extra) in backend.KNOWN.items():
        if not backend.installed(name):
            status = f'missing   (pip install "{extra}")'
        else:
            status = f"installed ({library} {_library_version(name)})"
            if name in backend.GPU_ONLY:
                try:
                    status += f", device: {backend.load(name).device}"
                except ImportError as error:
                    status += f", unusable: {error}"
        print(f"  {name:<7} {status}", file=out)


def main(argv=None):
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    parser = argparse.ArgumentParser(prog="python -m portanet" if program in ("", "__main__.py", "-c") else program)
    parser.add_argument("command", choices=["info"], help="what to do")
    parser.parse_args(argv)
    try:
        info()
        sys.stdout.flush()
    except BrokenPipeError:  # `portanet info | head -3`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()

"""`python -m portanet info`: version, backends, devices and float dtype."""
import argparse
import importlib.metadata
import sys

from . import __version__, backend


def _library_version(name):
    library = backend.KNOWN[name][0].replace("_", "-")
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return importlib.import_module(backend.KNOWN[name][0]).__version__


def info(out=sys.stdout):
    current = backend.get()
    print(f"portanet {__version__}", file=out)
    print(f"backend: {current.name} (device: {current.device})", file=out)
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
    parser = argparse.ArgumentParser(prog="python -m portanet")
    parser.add_argument("command", choices=["info"], help="what to do")
    parser.parse_args(argv)
    info()


if __name__ == "__main__":
    main()

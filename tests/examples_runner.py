"""Runs several examples one after another in one process, each as `python examples/NAME.py ARGS`
would run it, its output in files (test_examples.py: one start of Python, of the backend's library
and of matplotlib for all the examples of a backend, instead of one per example).

    python examples_runner.py JOBS.json

JOBS.json is a list of {"script", "argv", "stdout", "stderr", "code"} (paths, except argv): each
script runs as __main__ with sys.argv = [script, *argv], its file descriptors 1 and 2 sent to the
two files, and its exit code written to the "code" file.
"""
import json
import os
import runpy
import sys
import traceback


def run(job):
    sys.argv = [job["script"], *job["argv"]]
    sys.path.insert(0, os.path.dirname(job["script"]))
    saved = os.dup(1), os.dup(2)
    with open(job["stdout"], "w") as out, open(job["stderr"], "w") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        code = 0
        try:
            runpy.run_path(job["script"], run_name="__main__")
        except SystemExit as stop:   # as Python ends: None is 0, a message is printed and is 1
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sys.path.pop(0)
    with open(job["code"], "w") as f:
        f.write(str(code))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        run(job)

"""Work directories of the tests that write GGUF files and dumps (hundreds of MB each, about
18 GB over the whole suite if kept): a test that passes removes its --work directory, one that
fails keeps it to be read. MS_KEEP_WORK=1 keeps every one.

usage, at the end of a test script whose command line has --work DIR:
    sys.exit(workdir.clean_on_success(main))
"""
import os
import shutil
import sys


def work_arg(argv):
    """The DIR of --work DIR (or --work=DIR) in argv, or None."""
    for i, a in enumerate(argv):
        if a == "--work" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--work="):
            return a[len("--work="):]
    return None


def clean_on_success(main):
    """Runs main() and returns its exit code, removing --work's directory when that code is 0.
    An exception or sys.exit inside main propagates and the directory stays."""
    rc = main()
    work = work_arg(sys.argv)
    if rc in (0, None) and work and os.environ.get("MS_KEEP_WORK") != "1":
        shutil.rmtree(work, ignore_errors=True)
    return rc

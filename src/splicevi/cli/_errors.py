"""Error classes and exit statuses of the ``splicevi`` command line.

A scheduler, Snakemake or a shell script only sees the exit status, so each kind of failure has its
own: a wrong command line is not a bad input file, and an interrupted run is not a success.
"""

from __future__ import annotations

import signal

#: Exit statuses, documented in ``splicevi --help``.
EXIT_OK = 0
EXIT_INTERNAL = 1  # an unexpected error (a bug): Python prints the traceback
EXIT_USAGE = 2  # the command line is wrong (argparse uses 2 as well)
EXIT_DATA = 3  # an input file is missing, malformed or does not fit the request
EXIT_OUTPUT = 4  # an output location cannot be written
EXIT_SIGINT = 128 + signal.SIGINT  # 130, the shell's convention for a signal's death
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143

EXIT_CODES_HELP = """\
exit status:
  0    success: every output was written
  1    internal error (a bug; please report it with the traceback)
  2    usage error: wrong or conflicting command-line arguments
  3    data error: an input is missing, malformed or does not fit the request
  4    output error: an output location cannot be written (checked before any work)
  130  interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM, e.g. a scheduler's time
       limit). Nothing is written then: earlier outputs stay as they were."""


class UsageError(Exception):
    """The command line is wrong: printed without a traceback, exit status 2."""


class OutputError(Exception):
    """An output cannot be written where asked: printed without a traceback, exit status 4."""


class Interrupted(BaseException):
    """Raised from the signal handler of SIGTERM / SIGINT so that nothing is saved after it.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that no ``except Exception`` on the way up
    swallows it; it still passes through ``finally`` blocks and the cleanup of atomic writes.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

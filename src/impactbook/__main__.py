"""`python -m impactbook` and the `impactbook` script. An interrupt (Ctrl-C or SIGTERM) while the CLI is still
importing (its first ~0.3 s) ends as one during a command does: one line, exit 130, no traceback."""

import sys


def run() -> None:
    try:
        from .processes import die_with_parent_if_asked, sigterm_as_interrupt

        with sigterm_as_interrupt():
            die_with_parent_if_asked()  # a run started by a batch stops when the batch (or its Dask worker) dies
            from .cli import main

            main()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130)


if __name__ == "__main__":
    run()

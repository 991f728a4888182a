"""`python -m impactbook` and the `impactbook` script. An interrupt while the CLI is still importing (its
first ~0.2 s) ends as one during a command does: one line, exit 130, no traceback."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130)
    main()


if __name__ == "__main__":
    run()

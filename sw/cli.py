"""The ``s4`` command line: the front door for every user task."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="s4", description="S4-open accelerator tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    args = parser.parse_args(argv)
    if args.cmd == "version":
        from .. import __version__
        print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

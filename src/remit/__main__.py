"""`python -m remit`: the command line."""

from remit.cli import run

if __name__ == "__main__":
    run()

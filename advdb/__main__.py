"""``python -m advdb``: the command line (what ``torchrun -m advdb`` starts in every rank)."""

from advdb.cli import main

if __name__ == "__main__":
    main()

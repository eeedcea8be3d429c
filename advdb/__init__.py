"""advdb: targeted gradient-based adversarial attacks, recorded iteration by iteration in SQL.

The library never imports the CLI (``advdb.cli``); everything here is usable from Python.
"""

__version__ = "0.1.0"

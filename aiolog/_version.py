"""``aiolog.__version__``: the distribution's version, also in a checkout that is not installed."""

from __future__ import annotations

import os
import re
from importlib import metadata


def version() -> str:
    # A checkout (pyproject.toml beside the package) wins over installed metadata: with
    # PYTHONPATH on a checkout, another version of aiolog-safe may be installed as well.
    pyproject = os.path.join(os.path.dirname(os.path.dirname(__file__)), "pyproject.toml")
    try:
        with open(pyproject, encoding="utf-8") as file:
            text = file.read()
    except OSError:
        pass
    else:
        match = re.search(r'^name = "aiolog-safe"\n(?:.*\n)*?version = "([^"]+)"', text, re.M)
        if match:
            return match[1]
    try:
        return metadata.version("aiolog-safe")
    except metadata.PackageNotFoundError:
        return "0+unknown"  # neither installed nor a checkout (a copied folder)

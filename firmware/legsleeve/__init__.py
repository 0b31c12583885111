"""legsleeve: firmware for a do-it-yourself sequential air-compression leg sleeve."""

import os as _os

__version__ = "0.1.0"

if _os.path.exists(_os.path.join(_os.path.dirname(__file__), "_compiled.stamp")):  # a compiled copy (make compiled)
    from legsleeve._compiled import check as _check_compiled

    _check_compiled(_os.path.dirname(__file__))  # refused once older than its sources

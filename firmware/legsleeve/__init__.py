"""legsleeve: firmware for a do-it-yourself sequential air-compression leg sleeve."""

from pathlib import Path as _Path

__version__ = "0.1.0"

if (_Path(__file__).parent / "_compiled.json").exists():  # a compiled copy (`make compiled`): refused once stale
    from legsleeve._compiled import check as _check_compiled

    _check_compiled(_Path(__file__).parent)

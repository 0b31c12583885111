"""legsleeve: firmware for a do-it-yourself sequential air-compression leg sleeve."""

__version__ = "0.1.0"

"""The exception hierarchy: one base, each class also a built-in type so callers may catch either."""


class SleeveError(Exception):
    """Base of every error legsleeve raises on purpose."""


class ConfigError(SleeveError, ValueError):
    """A config or profile file is unusable. ``problems`` holds one ``file:line: key: message`` each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SensorFault(SleeveError, RuntimeError):
    """A pressure sensor could not give a trustworthy reading (I2C error, deadline, status bits, range)."""

    def __init__(self, sensor: str, message: str):
        self.sensor = sensor
        super().__init__(f"sensor {sensor}: {message}")


class I2CDeadline(SleeveError, TimeoutError):
    """An I2C transaction ran past its deadline (busy-wait, spinning lock, or a hung bus)."""


class HardwareError(SleeveError, RuntimeError):
    """The hardware back end could not start (missing GPIO library, no I2C bus, no sensor)."""

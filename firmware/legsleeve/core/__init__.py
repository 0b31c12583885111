"""The control core: commands, readings, limits, the plan, the controller and the clock. Standard library only:
it knows nothing of YAML, gpiozero or I2C (tests/test_architecture.py holds it to that)."""

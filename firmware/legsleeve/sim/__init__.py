"""The simulated rig: the real drivers and gpiozero mock pins, with the world (air, chips, time) replaced."""

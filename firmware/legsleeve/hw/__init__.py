"""The hardware seam: gpiozero drivers, the MPRLS sensors under an I2C deadline, the rig that drives them, and the
backends that open the sleeve or the simulated rig (the one place that chooses)."""

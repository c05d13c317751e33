"""The fleet: registered gateways, their labels, reported state and desired versions."""

"""The drift monitor: live predictions of each active version against its signed reference."""

"""The model registry: signed bundle versions and the content-addressed artifact store."""

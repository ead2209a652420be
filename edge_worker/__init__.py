"""The edge worker: a quantized small model that watches its confidence and exits early."""

"""missile: the Message Security Layer (MSL) for Python."""

__version__ = "0.1.0"

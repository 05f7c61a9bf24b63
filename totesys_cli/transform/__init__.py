"""Transform: the raw zone remodelled into the three star schemas, incrementally."""

from totesys_cli.transform.run import TransformOptions, TransformResult, transform

__all__ = ["TransformOptions", "TransformResult", "transform"]

"""Counting the weights stored in an ONNX model (read with the ``onnx`` package, never run)."""

from __future__ import annotations

import math


def _weight_types() -> set[int]:
    """TensorProto data types that hold learned weights (FLOAT, FLOAT16, DOUBLE, BFLOAT16)."""
    import onnx  # local: the window imports this module at start-up, onnx only when a model is probed
    return {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
            onnx.TensorProto.BFLOAT16}


def onnx_parameter_count(model_bytes: bytes) -> int:
    """Weights of a serialised ONNX model: initializer elements plus floating-point ``Constant`` tensors.

    Exporters keep weights either as graph initializers or, after constant folding, as ``Constant``
    nodes (DeepFilterNet3's encoder keeps most of its weights that way), so both count. Constants with
    a single element (shapes, scalars) and integer constants are not weights and are skipped.
    Subgraphs (If/Loop bodies) are not visited.

    Raises:
        onnx.onnx_cpp2py_export.checker.ValidationError / google.protobuf.message.DecodeError on bytes
        that are not an ONNX model.
    """
    import onnx

    weight_types = _weight_types()
    model = onnx.load_model_from_string(model_bytes)
    total = sum(math.prod(t.dims) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in weight_types:
                size = math.prod(attr.t.dims)
                if size > 1:
                    total += size
    return int(total)

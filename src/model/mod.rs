//! Placeholder: ONNX model (model helper).

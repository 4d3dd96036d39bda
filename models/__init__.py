"""Enhancement model definitions and adapters (installed as ``workbench_models``).

One module per model family: classical DSP baselines, adapters for packaged pretrained models
(DeepFilterNet3, NSNet2), architectures for public checkpoints (GTCRN), and loaders for ONNX and
TorchScript files described by model cards.
"""

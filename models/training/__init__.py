"""Training and fine-tuning of the spectral architectures in :mod:`workbench_models`.

* :mod:`.losses`: the training objectives, each a named function with its formula;
* :mod:`.data`: noisy/clean pair folders and on-the-fly mixing, validation held out by file, seeded;
* :mod:`.architectures`: the registry of trainable networks (GTCRN, GCRN, complex net) by name;
* :mod:`.trainer`: the training loop as a generator of progress events, atomic checkpoints and exact resume;
* :mod:`.export`: TorchScript and ONNX exports with a model card;
* :mod:`.loss_lab`: one architecture trained with several losses on the same data and seed;
* :mod:`.ray_train`: data-parallel training with Ray Train on CPU workers.

The configuration schema lives in :mod:`workbench.core.workflows.train_config` (Qt-free and torch-free, so the
Train panel writes the same file the command reads).
"""

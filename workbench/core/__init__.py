"""Audio, DSP and model core. Never imports Qt (enforced by an import-linter contract and a test)."""

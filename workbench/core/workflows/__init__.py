"""Application drivers over the document and the lower layers: export, batch, evaluation, phase lab, probes."""

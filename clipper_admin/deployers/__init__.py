"""Clipper's ``clipper_admin.deployers``: ``from clipper_admin.deployers import pytorch``.

One module per framework (python, pytorch, onnx, keras, tensorflow, pyspark,
mxnet) and ``deployer_utils``, each forwarding to ``clipper_core.deployers``.
"""

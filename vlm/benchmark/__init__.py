"""Measurements of the model side: batching, constrained decoding, quantization, real-size architectures.

Every function here measures and returns plain numbers; printing and the JSON report live in
``catalog_enrich.benchmark``.
"""

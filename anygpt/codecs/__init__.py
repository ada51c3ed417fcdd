"""Codecs: the codec interface and registry (base.py) and its implementations, one module each."""

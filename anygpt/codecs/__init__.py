"""Codecs: the codec interface and registry (base.py) and its implementations."""

from anygpt.codecs.base import Codec, build_codec, codec_names, register_codec

__all__ = ["Codec", "build_codec", "codec_names", "register_codec"]

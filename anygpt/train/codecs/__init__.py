"""Training of our own small codecs (anygpt.codecs.small is their inference side), on the offline world.

    config.py    TrainConfig, the defaults of each kind, what every recipe does around its loop
    loop.py      the loop: resume, per-step randomness, checkpoints, metrics (anygpt.train's shared parts)
    recipes.py   one recipe per codec kind, and `evaluate` (`anygpt codecs train|eval`)
    scene.py     the small-scene recipe
    export.py    the export directory (codec.json + weights.safetensors) and `anygpt codecs ship`
    probe.py     how readable music attributes are from layer-1 codes (`anygpt codecs probe`)
"""

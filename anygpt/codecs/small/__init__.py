"""Our own small codecs, trained here on the offline world, with AnyGPT's token geometry:

    small-image   64x64 RGB  -> (1, 32) codes of 1024            image.py
    small-scene   64x64 RGB  -> (1, 38) scene-attribute codes     scene.py (reader + learnt renderer)
    small-speech  16 kHz     -> (1, T) layer-1 codes at 50 Hz     audio.py (8-layer RVQ, layer 1 the phone
                                                                  of each frame; layers 2..8 from the voice
                                                                  renderer, voice.py, or a small SoundStorm)
    small-music   32 kHz     -> (4, T) codes of 2048 at 50 Hz     audio.py (4-layer RVQ)

Training and evaluation live in anygpt/train/codecs/ (recipes, loop, export, probe); command.py here
(`anygpt codecs train|eval|probe|ship ...`) dispatches to them.
"""

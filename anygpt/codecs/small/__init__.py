"""Our own small codecs, trained here on the offline world, with AnyGPT's token geometry:

    small-image   64x64 RGB  -> (1, 32) codes of 1024            image.py
    small-speech  16 kHz     -> (1, T) layer-1 codes at 50 Hz     audio.py (8-layer RVQ, CTC on layer 1,
                                                                  small SoundStorm for layers 2..8)
    small-music   32 kHz     -> (4, T) codes of 2048 at 50 Hz     audio.py (4-layer RVQ)

Training and evaluation: train.py (one recipe per codec), train_common.py (checkpoint, resume,
progress, metrics, loss plot, export), command.py (`anygpt codecs train|eval ...`).
"""

"""Training of the judges (anygpt.eval.judges is their inference side): every judge that needs
weights is rebuilt here, deterministically from a seed, into the judges' weights folder.

    command.py      `anygpt eval judges` and `anygpt eval judges-train` (their arguments)
    build.py        `anygpt eval judges-train`: which judges, in order
    image.py        the image attribute judge, on fresh scene renders
    contrastive.py  the CLIP and CLAP analogs
    music.py        the music family/instrument MLP
    asr_lm.py       the ASR's closed-vocabulary bigram LM over the world's sentence grammar
    calibrate.py    each judge's figures on a world's test split (`anygpt eval judges`)
"""

JUDGES = ("asr", "image", "music", "clip", "clap")  # what `anygpt eval judges-train --only` picks from
KINDS = ("images", "speech", "music")  # the world kinds `anygpt eval judges` calibrates on

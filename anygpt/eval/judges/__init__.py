"""Judges: independent scorers for generated images, captions, speech and music.

No judge learns from what our models learn from (they are pretrained elsewhere, rule-based, or
trained here on fresh renders / the world's train split only), and each reports a calibration
figure on ground truth (`anygpt eval judges --world DIR --json`):

    speech.py       asr(waveforms, sample_rate), wer(hyps, refs), speaker_similarity(a, b, sample_rate)
    image.py        ImageJudge.load().attributes(images), attribute_accuracy(pred, truth)
    captions.py     text_attributes(caption), caption_accuracy(captions, truths), cider(cands, refs)
    music.py        MusicJudge.load().attributes(waveforms, sample_rate), music_attribute_accuracy(...)
    contrastive.py  clip_score(images, texts), clap_score(waveforms, texts, sample_rate)
    (their training, calibration and commands live in anygpt/train/judges/)

Imports are lazy: importing a module here loads no model and no heavy package.
"""

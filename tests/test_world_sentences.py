"""The sentence generator: a real vocabulary, varied syntax, and splits disjoint by text."""

from anygpt.world import sentences, splits
from anygpt.world.conversations import draw_sentence
from anygpt.world.randomness import rng_for


def test_vocabulary_has_hundreds_of_words():
    assert len(sentences.vocabulary_words()) >= 500


def test_sentences_are_varied_and_well_formed():
    generated = [sentences.generate(rng_for(3, "sentence-test", i)) for i in range(400)]
    assert {s.frame for s in generated} == set(sentences.FRAMES)
    words = {w.strip(".,?!").lower() for s in generated for w in s.text.split()}
    assert len(words) >= 300
    for sentence in generated:
        assert sentence.text[0].isupper() and sentence.text[-1] in ".?!", sentence
        assert "  " not in sentence.text and " ," not in sentence.text, sentence
    assert len({s.text for s in generated}) >= 390


def test_sentence_is_a_function_of_the_seed():
    a = sentences.generate(rng_for(1, "x", 5))
    b = sentences.generate(rng_for(1, "x", 5))
    assert a == b


def test_drawn_sentences_never_cross_splits():
    texts = {split: {draw_sentence(rng_for(0, split, i), split).text for i in range(60)} for split in splits.SPLITS}
    assert not texts["train"] & texts["test"]
    assert not texts["train"] & texts["validation"]
    for split, group in texts.items():
        assert all(splits.hashed_split(text) == split for text in group)


def test_split_counts_are_exact():
    for n in (1, 3, 10, 20, 399):
        counts = splits.split_counts(n)
        assert sum(counts.values()) == n
        labels = splits.assign(0, "images", n)
        assert {name: labels.count(name) for name in splits.SPLITS} == counts

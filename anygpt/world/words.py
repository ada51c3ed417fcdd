"""Small English helpers shared by every caption and sentence template."""

# Words spelt with a vowel but said with a consonant, and the other way round.
CONSONANT_SOUND = ("europ", "uni", "use", "one")
VOWEL_SOUND = ("hour", "honest")


def article(phrase: str) -> str:
    """'an orange circle', 'a European folk song', 'an hour'."""
    lower = phrase.lower()
    vowel = lower[:1] in "aeiou"
    if lower.startswith(CONSONANT_SOUND):
        vowel = False
    elif lower.startswith(VOWEL_SOUND):
        vowel = True
    return ("an " if vowel else "a ") + phrase


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

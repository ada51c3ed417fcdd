"""English sentences from a small grammar over a real vocabulary (vocabulary.json, ~600 words).

Speech needs text that is not only captions: statements in several tenses, questions, commands,
coordination, subordinate and relative clauses, comparisons, reported speech and exclamations.
Verbs name the noun classes they take ("read" takes readable things), so sentences mostly make sense.

    sentence = generate(rng)          # Sentence(text='Did the old farmer feed the goats?', frame='yes_no')
"""

import random
from dataclasses import dataclass

from anygpt.world import tables
from anygpt.world.words import article, capitalise

ANIMATE = ("person", "animal")
BIRDS = ("bird", "owl", "duck", "goose", "geese")
DOGS = ("dog", "puppy", "puppie")
FRAMES = ("statement", "intransitive", "existential", "yes_no", "wh_question", "imperative",
          "coordination", "subordinate", "relative", "comparative", "negation", "modal", "weather",
          "reported", "exclamation", "perfect", "request", "schedule")


@dataclass(frozen=True)
class Sentence:
    text: str
    frame: str  # which syntactic frame produced it, kept as an attribute for analysis


def generate(rng: random.Random, frame: str | None = None) -> Sentence:
    grammar = _Grammar(rng, tables.load("vocabulary"))
    frame = frame or rng.choice(FRAMES)
    body, end = getattr(grammar, frame)()
    return Sentence(text=capitalise(body) + end, frame=frame)


def vocabulary_words() -> set[str]:
    """Every word the grammar can use (lower case), to check the vocabulary size."""
    vocab = tables.load("vocabulary")
    words: set[str] = set()

    def add(value):
        if isinstance(value, str):
            words.update(value.lower().replace("'", " ").split())
        elif isinstance(value, dict):
            for key, inner in value.items():
                if not key.startswith("_") and key not in ("subject", "objects"):
                    add(inner)
        elif isinstance(value, list):
            for inner in value:
                add(inner)

    add({k: v for k, v in vocab.items() if k != "pronouns"})
    add([p[:3] for p in vocab["pronouns"]])
    return words




@dataclass(frozen=True)
class _Phrase:
    text: str
    person: str  # "1s", "2", "3s" or "p": what the verb agrees with
    category: str


class _Grammar:
    """One sentence's worth of random choices; every method returns (text, final punctuation)."""

    def __init__(self, rng: random.Random, vocab: dict):
        self.rng, self.v = rng, vocab

    # -- noun phrases -------------------------------------------------------------------------

    def noun_phrase(self, category: str, *, plural: bool | None = None, adjective: float = 0.4,
                    determiner: str | None = None) -> _Phrase:
        rng = self.rng
        if category == "person" and determiner is None and rng.random() < 0.35:
            return _Phrase(rng.choice(self.v["names"]), "3s", "person")
        singular, plural_form = rng.choice(self.v["nouns"][category])[:2]
        if plural_form is None:  # mass noun: "some bread", "the warm soup"
            plural = False
        elif plural is None:
            plural = rng.random() < 0.3
        noun = plural_form if plural else singular
        if rng.random() < adjective:
            noun = f"{rng.choice(self.v['adjectives'][category])} {noun}"
        if determiner is None:
            choices = ["the", "the", "my", "our", "this" if not plural else "these"]
            if plural_form is None:
                choices.append("some")
            elif plural:
                choices += ["some", rng.choice(self.v["numbers"])]
            else:
                choices.append("a")
            determiner = rng.choice(choices)
        text = article(noun) if determiner == "a" else f"{determiner} {noun}"
        return _Phrase(text, "p" if plural else "3s", category)

    def subject(self, kind: str = "animate", *, pronoun: float = 0.2) -> _Phrase:
        if kind == "bird":
            return self._bird()
        category = self.rng.choice(ANIMATE) if kind == "animate" else kind
        if category == "person" and self.rng.random() < pronoun:
            word, _, _, person = self.rng.choice(self.v["pronouns"])
            return _Phrase(word, person, "person")
        return self.noun_phrase(category, adjective=0.3)

    def _bird(self) -> _Phrase:
        plural = self.rng.random() < 0.4
        pairs = [p for p in self.v["nouns"]["animal"] if p[0] in BIRDS]
        singular, plural_form = self.rng.choice(pairs)
        return _Phrase(f"the {plural_form if plural else singular}", "p" if plural else "3s", "animal")

    def object_of(self, verb: dict) -> _Phrase:
        return self.noun_phrase(self.rng.choice(verb["objects"]))

    def place(self) -> str:
        noun, _, preposition = self.rng.choice(self.v["nouns"]["place"])
        if self.rng.random() < 0.35:
            noun = f"{self.rng.choice(self.v['adjectives']['place'])} {noun}"
        # "by the river" and "near the station" read well; vary the preposition a little
        other = "behind" if preposition == "in" else preposition
        preposition = self.rng.choice([preposition, preposition, "near", other])
        return f"{preposition} the {noun}"

    # -- verbs ---------------------------------------------------------------------------------

    def verb(self, transitive: bool, subject: _Phrase) -> dict:
        pool = self.v["verbs"]["transitive" if transitive else "intransitive"]
        fitting = [verb for verb in pool if self._fits(verb["subject"], subject)]
        return self.rng.choice(fitting)

    @staticmethod
    def _fits(need: str, subject: _Phrase) -> bool:
        if need == "animate":
            return subject.category in ANIMATE
        if need in ("bird", "dog"):  # "fly" and "bark" need the right animal
            nouns = BIRDS if need == "bird" else DOGS
            return subject.category == "animal" and subject.text.split()[-1].rstrip("s") in nouns
        return need == subject.category

    def conjugate(self, verb: dict, subject: _Phrase, tense: str) -> str:
        person = subject.person
        be_present = {"1s": "am", "2": "are", "3s": "is", "p": "are"}[person]
        be_past = "was" if person in ("1s", "3s") else "were"
        if tense == "present":
            return verb["s"] if person == "3s" else verb["base"]
        if tense == "past":
            return verb["past"]
        if tense == "future":
            return f"will {verb['base']}"
        if tense == "progressive":
            return f"{be_present} {verb['ing']}"
        if tense == "past_progressive":
            return f"{be_past} {verb['ing']}"
        if tense == "perfect":
            return f"{'has' if person == '3s' else 'have'} {verb['pp']}"
        raise ValueError(tense)

    def time_for(self, tense: str) -> str:
        key = {"past": "past", "past_progressive": "past", "future": "future"}.get(tense, "present")
        if tense == "progressive":
            return self.rng.choice(["right now", "at the moment", "now", "today"])
        if tense == "perfect":
            return self.rng.choice(["this week", "today", "this year", "since Monday"])
        return self.rng.choice(self.v["times"][key])

    def clause(self, tense: str | None = None, *, extras: float = 0.5) -> str:
        """A full declarative clause: subject, verb, maybe object, place and time."""
        rng = self.rng
        tense = tense or rng.choice(["present", "past", "past", "future", "progressive", "past_progressive"])
        subject = self.subject()
        transitive = rng.random() < 0.65
        verb = self.verb(transitive, subject)
        words = [subject.text]
        if tense in ("present", "past") and rng.random() < 0.2:
            words.append(rng.choice(self.v["adverbs"]["frequency"]))
        words.append(self.conjugate(verb, subject, tense))
        if transitive:
            words.append(self.object_of(verb).text)
        elif rng.random() < 0.4:
            words.append(rng.choice(self.v["adverbs"]["manner"]))
        if rng.random() < extras:
            words.append(self.place())
        if rng.random() < extras:
            words.append(self.time_for(tense))
        return " ".join(words)

    # -- frames --------------------------------------------------------------------------------

    def statement(self):
        return self.clause(extras=0.6), "."

    def intransitive(self):
        rng = self.rng
        subject = self.subject("bird") if rng.random() < 0.15 else self.subject()
        tense = rng.choice(["present", "past", "future", "progressive"])
        verb = self.verb(False, subject)
        words = [subject.text, self.conjugate(verb, subject, tense)]
        if rng.random() < 0.6:
            words.append(rng.choice(self.v["adverbs"]["manner"]))
        words.append(self.place())
        if rng.random() < 0.5:
            words.append(self.time_for(tense))
        return " ".join(words), "."

    def existential(self):
        rng = self.rng
        category = rng.choice(["food", "object", "animal", "plant", "vehicle", "person", "readable"])
        past = rng.random() < 0.4
        thing = self.noun_phrase(category, plural=rng.random() < 0.6, determiner="")
        if thing.person == "p":
            amount = rng.choice(self.v["numbers"] + ["some", "many", "a few", "no"])
            verb = "were" if past else "are"
        else:
            amount, verb = "", "was" if past else "is"
        noun = thing.text.strip()
        if not amount and thing.text.split()[-1] in {p[0] for p in self.v["nouns"][category] if p[1]}:
            noun = article(noun)
        elif not amount:
            amount = "some"
        return f"there {verb} {amount + ' ' if amount else ''}{noun} {self.place()}", "."

    def yes_no(self):
        rng = self.rng
        subject = self.subject()
        form = rng.choice(["do", "did", "be", "can", "will", "have"])
        transitive = rng.random() < 0.7
        verb = self.verb(transitive, subject)
        rest = self.object_of(verb).text if transitive else self.place()
        if form == "do":
            aux = "does" if subject.person == "3s" else "do"
            text = f"{aux} {subject.text} {verb['base']} {rest}"
        elif form == "did":
            text = f"did {subject.text} {verb['base']} {rest}"
        elif form == "be":
            aux = {"1s": "am", "2": "are", "3s": "is", "p": "are"}[subject.person]
            text = f"{aux} {subject.text} {verb['ing']} {rest}"
        elif form == "have":
            aux = "has" if subject.person == "3s" else "have"
            text = f"{aux} {subject.text} ever {verb['pp']} {rest}"
        else:
            text = f"{form} {subject.text} {verb['base']} {rest}"
        if rng.random() < 0.3 and form in ("did", "will"):
            text += " " + self.time_for("past" if form == "did" else "future")
        return text, "?"

    def wh_question(self):
        rng = self.rng
        subject = self.subject()
        verb = self.verb(True, subject)
        thing = self.object_of(verb)
        kind = rng.choice(["where", "who", "what", "why", "when", "how_many", "which"])
        aux_do = "does" if subject.person == "3s" else "do"
        if kind == "where":
            return f"where did {subject.text} {verb['base']} {thing.text}", "?"
        if kind == "who":
            return f"who {rng.choice([verb['past'], 'will ' + verb['base'], verb['s']])} {thing.text}", "?"
        if kind == "what":
            be = {"1s": "am", "2": "are", "3s": "is", "p": "are"}[subject.person]
            return f"what {be} {subject.text} {verb['ing']} {self.place()}", "?"
        if kind == "why":
            adverb = rng.choice(["never ", "always ", "often ", ""])
            return f"why {aux_do} {subject.text} {adverb}{verb['base']} {thing.text}", "?"
        if kind == "when":
            return f"when will {subject.text} {verb['base']} {thing.text}", "?"
        if kind == "which":
            category = rng.choice(verb["objects"])
            noun = rng.choice([p for p in self.v["nouns"][category] if p[1]])[0]
            return f"which {noun} did {subject.text} {verb['base']}", "?"
        countable = [c for c in verb["objects"] if any(p[1] for p in self.v["nouns"][c])]
        category = rng.choice(countable)
        plural = rng.choice([p for p in self.v["nouns"][category] if p[1]])[1]
        return f"how many {plural} did {subject.text} {verb['base']} {self.time_for('past')}", "?"

    def imperative(self):
        rng = self.rng
        you = _Phrase("you", "2", "person")
        verb = self.verb(True, you)
        text = f"{rng.choice(['please ', '', '', 'now '])}{verb['base']} {self.object_of(verb).text}"
        tail = rng.random()
        if tail < 0.3:
            text += f" {rng.choice(['before', 'after', 'when'])} {self.clause('present', extras=0.0)}"
        elif tail < 0.6:
            text += f" {rng.choice(self.v['adverbs']['manner'])}"
        elif tail < 0.8:
            text += f" {self.time_for('future')}"
        return text, rng.choice([".", ".", "!"])

    def coordination(self):
        tense = self.rng.choice(["past", "present", "future"])
        joiner = self.rng.choice([", and", ", but", ", so", " and", ", yet"])
        return f"{self.clause(tense, extras=0.3)}{joiner} {self.clause(tense, extras=0.3)}", "."

    def subordinate(self):
        rng = self.rng
        tense = rng.choice(["past", "present"])
        conjunction = rng.choice(["when", "because", "although", "before", "after", "while", "if", "since"])
        first, second = self.clause(tense, extras=0.3), self.clause(tense, extras=0.3)
        if conjunction == "if":
            second = self.clause("future", extras=0.3)
            first = self.clause("present", extras=0.2)
        if rng.random() < 0.5:
            return f"{conjunction} {first}, {second}", "."
        return f"{second} {conjunction} {first}", "."

    def relative(self):
        rng = self.rng
        head = self.noun_phrase("person", determiner="the", adjective=0.2)
        verb = self.verb(True, head)
        description = f"{head.text} who {verb['past']} {self.object_of(verb).text}"
        be = "is" if head.person == "3s" else "are"
        if rng.random() < 0.5:
            relation = rng.choice(["neighbour", "friend", "teacher", "cousin"]) + ("s" if be == "are" else "")
            return f"{description} {be} {rng.choice(['my', 'our', 'your'])} {relation}", "."
        speaker = self.subject("person", pronoun=0.5)
        see = self.v["verbs"]["transitive"][[v["base"] for v in self.v["verbs"]["transitive"]].index("see")]
        return f"{speaker.text} {self.conjugate(see, speaker, 'past')} {description} {self.place()}", "."

    def comparative(self):
        rng = self.rng
        category = rng.choice(sorted(self.v["comparatives"]))
        first = self.noun_phrase(category, plural=False, adjective=0.0, determiner="the")
        second = self.noun_phrase(category, plural=False, adjective=0.0, determiner="the")
        if first.text == second.text:
            second = _Phrase(f"the other {first.text.split()[-1]}", "3s", category)
        be = rng.choice(["is", "was", "is"])
        word = rng.choice(self.v["comparatives"][category])
        return f"{first.text} {be} {word} than {second.text}", "."

    def negation(self):
        rng = self.rng
        subject = self.subject()
        verb = self.verb(True, subject)
        aux = rng.choice(["did not", "does not" if subject.person == "3s" else "do not", "will not", "cannot"])
        return f"{subject.text} {aux} {verb['base']} {self.object_of(verb).text}", "."

    def modal(self):
        rng = self.rng
        subject = self.subject()
        verb = self.verb(True, subject)
        modal = rng.choice(["should", "could", "might", "must", "can", "would like to"])
        text = f"{subject.text} {modal} {verb['base']} {self.object_of(verb).text}"
        if rng.random() < 0.5:
            text += f" {self.time_for('future')}"
        return text, "."

    def weather(self):
        rng = self.rng
        if rng.random() < 0.5:
            spell = rng.choice(["morning", "day", "night", "evening"])
            return f"it was {rng.choice(self.v['weather']['ing'])} all {spell} {self.place()}", "."
        noun = rng.choice(self.v["weather"]["nouns"])
        return f"the {noun} {rng.choice(['will stop', 'started', 'came back', 'lasted all day'])} {self.place()}", "."

    def reported(self):
        rng = self.rng
        speaker = self.subject("person")
        say = rng.choice(["said", "told us", "thinks", "remembered", "explained", "wrote"])
        return f"{speaker.text} {say} that {self.clause('past', extras=0.4)}", "."

    def exclamation(self):
        rng = self.rng
        category = rng.choice(["place", "animal", "plant", "object", "readable"])
        noun = rng.choice(self.v["nouns"][category])[0]
        adjective = rng.choice(self.v["exclamation_adjectives"])
        if rng.random() < 0.5:
            return f"what {article(adjective)} {noun} this is", "!"
        feeling = rng.choice(self.v["feelings"])
        who = rng.choice(["I am so", "we were very", "she was really", "they are"])
        return f"{who} {feeling} to see the {noun}", "!"

    def perfect(self):
        rng = self.rng
        subject = self.subject()
        verb = self.verb(True, subject)
        adverb = rng.choice(["already ", "just ", "never ", ""])
        aux = "has" if subject.person == "3s" else "have"
        return f"{subject.text} {aux} {adverb}{verb['pp']} {self.object_of(verb).text} {self.time_for('perfect')}", "."

    def request(self):
        rng = self.rng
        you = _Phrase("you", "2", "person")
        verb = self.verb(True, you)
        opener = rng.choice(["could you", "would you", "can you", "would you like to", "shall we"])
        text = f"{opener} {verb['base']} {self.object_of(verb).text}"
        if rng.random() < 0.4:
            text += " " + rng.choice(["with me", "for me", "please", "tomorrow", "after lunch"])
        return text, "?"

    def schedule(self):
        rng = self.rng
        vehicle = rng.choice(self.v["nouns"]["vehicle"])[0]
        place = rng.choice(self.v["nouns"]["place"])[0]
        event = rng.choice([f"the {vehicle} to the {place} leaves at", f"the {place} opens at",
                            f"the {place} closes at", f"we will meet at the {place} at",
                            f"the concert in the {place} starts at"])
        return f"{event} {rng.choice(self.v['clock_times'])}", "."

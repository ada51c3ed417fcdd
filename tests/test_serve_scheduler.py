"""The server's scheduler: requests decoded together (joining a running batch, beam phases batched
across unrelated requests, caches reused from earlier replies) give the ids each gives alone."""

import threading
from dataclasses import replace

import pytest

from anygpt.generate.config import SamplingConfig
from anygpt.generate.engine import GenerationRequest, generate_ids
from anygpt.generate.kvengine import common_prefix
from anygpt.serve.scheduler import Job, Overloaded, Scheduler

pytestmark = pytest.mark.tiny_default


@pytest.fixture(scope="module")
def tiny():
    from anygpt.bundles import load_bundle

    return load_bundle("tiny")


def prompt(bundle, text: str, want=None, history=()):
    from anygpt.serve import conversation as conv

    turns = [conv.Turn("user", [t]) if i % 2 == 0 else conv.Turn("assistant", [t]) for i, t in enumerate(history)]
    return conv.prompt_ids(bundle, conv.Conversation(None, turns + [conv.Turn("user", [text])]), want)


def alone(bundle, ids, decoding, allowed):
    return generate_ids(bundle.model, bundle.layout, [GenerationRequest(ids, allowed)], decoding,
                        stop_ids=bundle.stop_ids, pad_id=bundle.pad_id)[0]


def run_together(scheduler, jobs, stagger=None):
    for i, job in enumerate(jobs):
        scheduler.submit(job)
        if stagger is not None and i == 0:
            stagger.wait(10)  # the first job is running before the others arrive
    for job in jobs:
        assert job.finished.wait(120)
        assert job.error is None, job.error


@pytest.mark.parametrize("text_beams", [5, 1])
def test_batched_jobs_give_the_ids_they_give_alone(tiny, text_beams):
    decoding = replace(tiny.decoding, max_new_tokens=120, text=replace(tiny.decoding.text, num_beams=text_beams),
                       image=SamplingConfig(do_sample=False), speech=SamplingConfig(do_sample=False),
                       music=SamplingConfig(do_sample=False))
    asks = [("a large red circle in the middle. Please generation an image.", "image"),
            ("the dog runs. Please read the given text.", "speech"),
            ("Hello there.", "text"),
            ("a small blue square. Please generation an image.", None),
            ("Hi.", "text")]
    prompts = [prompt(tiny, t, w) for t, w in asks]
    prompts.append(prompt(tiny, "And another one?", "text", history=("Hello there.", "Hi, how can I help?")))
    allowed = [() if w == "text" else None for _, w in asks] + [()]
    expected = [alone(tiny, p, decoding, a) for p, a in zip(prompts, allowed)]

    scheduler = Scheduler(tiny.model, tiny.layout, stop_ids=tiny.stop_ids, pad_id=tiny.pad_id, max_batch=4).start()
    try:
        first_token = threading.Event()
        jobs = [Job(p, decoding, a) for p, a in zip(prompts, allowed)]
        jobs[0].on_token = lambda tok: first_token.set()
        run_together(scheduler, jobs, stagger=first_token)
        assert [j.ids for j in jobs] == expected
        assert scheduler.peak_batch >= 2  # they did run together
        # a request that repeats an earlier conversation computes only its new tokens: all of the
        # earlier reply when it was decoded on the engine; with beam-searched text (HF's beam search
        # keeps no cache per row), the longest prefix an engine phase cached (here the system line)
        again = Job(prompts[2] + expected[2][:-1] + tiny.token_ids(["<eos>"]) + prompt(tiny, "Tell me more.", "text")[1:],
                    decoding, ())
        run_together(scheduler, [again])
        shared = common_prefix(prompts[0], again.prompt, limit=len(again.prompt))  # with the image job's
        cached = len(prompts[2]) + len(expected[2]) - 2 if text_beams == 1 else shared
        assert again.cached_prompt >= cached
        assert again.ids == alone(tiny, again.prompt, decoding, ())
    finally:
        scheduler.stop()


def test_budgets_overload_and_failures(tiny):
    decoding = replace(tiny.decoding, max_new_tokens=7, speech=SamplingConfig(do_sample=False))
    scheduler = Scheduler(tiny.model, tiny.layout, stop_ids=tiny.stop_ids, pad_id=tiny.pad_id, max_jobs=2).start()
    try:
        short = Job(prompt(tiny, "the dog runs. Please read the given text.", "speech"), decoding, None)
        run_together(scheduler, [short])
        assert len(short.ids) == 7  # the job's own budget
        blocker = threading.Event()
        slow = [Job(prompt(tiny, "Hello.", "text"), replace(decoding, max_new_tokens=50), (),
                    on_token=lambda tok: blocker.wait(10)) for _ in range(2)]
        for job in slow:
            scheduler.submit(job)
        with pytest.raises(Overloaded):
            scheduler.submit(Job(prompt(tiny, "Hi.", "text"), decoding, ()))
        blocker.set()
        for job in slow:
            assert job.finished.wait(60)
        # a failing batch fails its jobs, not the scheduler
        bad = Job([10**9], decoding, ())  # an id beyond the vocabulary
        run = Job(prompt(tiny, "Hi.", "text"), decoding, ())
        scheduler.submit(bad)
        assert bad.finished.wait(60) and bad.error is not None
        run_together(scheduler, [run])
        assert run.ids
    finally:
        scheduler.stop()

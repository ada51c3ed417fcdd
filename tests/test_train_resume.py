"""The training loop: exact resumption, falling validation loss, LoRA training only what it should,
the schedule of Table 8."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from anygpt.data.pipeline.example import write_example_dataset
from anygpt.data.pipeline.mixture import DatasetSpec, MixConfig, run_mix
from anygpt.data.pipeline.packing import run_pack
from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize
from anygpt.train.metrics import read_metrics
from anygpt.train.recipe import TrainConfig, load_recipe
from anygpt.train.trainer import lr_at, train


def make_packed(root, bundle, *, max_len=256, budget=6000, chats=False):
    files = write_example_dataset(root / "raw", pairs=10, docs=2, chats=4)
    names = ("chats",) if chats else ("images", "speech")
    for name in names:
        run_tokenize(TokenizeConfig(inputs=[str(files[name])], out=str(root / name), chunk_size=64),
                     quiet=True, bundle=bundle)
    cfg = MixConfig(datasets=[DatasetSpec(n, str(root / n)) for n in names], budget_tokens=budget,
                    val_fraction=0.2, seed=0)
    run_mix(cfg, bundle.tokenizer, bundle.layout, root / "mix", quiet=True)
    run_pack(root / "mix" / "train", root / "train", max_len, quiet=True)
    run_pack(root / "mix" / "val", root / "val", max_len, quiet=True)
    return root / "train", root / "val"


@pytest.fixture(scope="module")
def packed(tmp_path_factory, debug_bundle):
    return make_packed(tmp_path_factory.mktemp("data"), debug_bundle)


def fresh(bundle):
    return dataclasses.replace(bundle, model=copy.deepcopy(bundle.model))


def config(packed, out, **kw):
    base = dict(data=str(packed[0]), val_data=str(packed[1]), out=str(out), max_len=256, micro_batch=2,
                grad_accum=2, steps=6, lr=3e-3, warmup_ratio=0.2, tensorboard=False, export=False,
                eval_max_rows=4)
    return TrainConfig(**{**base, **kw})


def test_resume_reproduces_the_uninterrupted_loss_curve(packed, tmp_path, debug_bundle):
    full = train(config(packed, tmp_path / "full", save_every=2, steps=5), bundle=fresh(debug_bundle), log=lambda m: None)
    assert len(full["losses"]) == 5
    # killed after 3 steps: the last checkpoint is step 2, so step 3 is redone after resuming
    part = train(config(packed, tmp_path / "cut", save_every=2, steps=5, stop_after=3), bundle=fresh(debug_bundle),
                 log=lambda m: None)
    assert part["stopped"] and len(part["losses"]) == 3
    rest = train(config(packed, tmp_path / "cut", save_every=2, steps=5), bundle=fresh(debug_bundle), log=lambda m: None)
    assert rest["start_step"] == 2
    assert part["losses"][:2] + rest["losses"] == full["losses"]  # bit-exact on CPU
    assert rest["last_eval"]["val_loss"] == full["last_eval"]["val_loss"]
    # the metrics file reads as one uninterrupted run
    steps = [r["step"] for r in read_metrics(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]
    ck = tmp_path / "cut" / "checkpoints"
    assert (ck / "latest").read_text().strip() == "step-0000005"
    assert not list(ck.glob(".tmp-*"))


def test_train_validation_loss_falls_and_writes_artifacts(packed, tmp_path, debug_bundle):
    s = train(config(packed, tmp_path / "run", steps=8, eval_every=4, export=True, tensorboard=True),
              bundle=fresh(debug_bundle), log=lambda m: None)
    assert s["last_eval"]["val_loss"] < s["first_eval"]["val_loss"] - 0.5
    assert {"val/image/to_text", "val/image/from_text", "val/speech/to_text"} <= set(s["last_eval"])
    run = tmp_path / "run"
    assert (run / "loss.png").stat().st_size > 1000 and list((run / "tensorboard").iterdir())
    from anygpt.bundles import load_bundle

    b = load_bundle(run / "bundle")  # the trained model as a bundle, ready for the next stage
    sd = fresh(debug_bundle).model.state_dict()
    assert not torch.equal(b.model.state_dict()["model.embed_tokens.weight"], sd["model.embed_tokens.weight"])


def test_conditioning_gap_pairs_are_fixed_validation_documents(packed, debug_bundle):
    from anygpt.data.pipeline.samples import ASSISTANT
    from anygpt.train.conditioning import conditioning_gaps, direction_name, gap_pairs
    from anygpt.train.data import PackedRows

    assert [direction_name(t) for t in ("speech/to_text", "music/from_text", "chat", "interleaved")] == \
        ["speech->text", "text->music", None, None]
    assert gap_pairs(PackedRows(packed[1]), 3) == {}  # one validation pair per direction: nothing to swap
    rows = PackedRows(packed[0])  # the training rows hold many pairs of each direction
    pairs = gap_pairs(rows, 3)
    assert pairs == gap_pairs(rows, 3)  # chosen from the data alone
    assert set(pairs) == {"image->text", "text->image", "speech->text", "text->speech"}
    assert all(len(p) == 3 for p in pairs.values())
    # each pair is one validation document of its direction, cut where its ASSISTANT tokens begin
    docs = {}
    for row in rows.rows(list(range(len(rows)))):
        end = 0
        for n, tag in zip(row["doc_lens"], row["doc_tags"]):
            docs[tuple(row["input_ids"][end: end + n])] = (row["roles"][end: end + n], direction_name(tag))
            end += n
    for name, ps in pairs.items():
        for prompt, reply in ps:
            roles, direction = docs[tuple(prompt + reply)]
            assert direction == name and ASSISTANT not in roles[: len(prompt)]
            assert set(roles[len(prompt):]) == {ASSISTANT}
    gaps = conditioning_gaps(debug_bundle.model, pairs, pad_id=debug_bundle.pad_id, batch_size=2)
    assert set(gaps) == {f"val/gap/{name}" for name in pairs} and all(v == v for v in gaps.values())
    # the training metric is the evaluation's figure on the same pairs
    from anygpt.eval.conditioning import gap_figures, reply_nll

    own = pairs["image->text"]
    swapped = [(own[(i + 1) % len(own)][0], r) for i, (_, r) in enumerate(own)]
    scores = reply_nll(debug_bundle.model, own + swapped, pad_id=debug_bundle.pad_id, batch_size=1)
    assert gaps["val/gap/image->text"] == pytest.approx(gap_figures(scores[: len(own)], scores[len(own):])["gap"],
                                                       rel=1e-4, abs=1e-6)


def test_train_logs_the_conditioning_gap_per_direction(packed, tmp_path, debug_bundle):
    # validation on the training rows, which hold several pairs of every direction
    cfg = config(packed, tmp_path / "gap", val_data=str(packed[0]), steps=2, gap_pairs=4)
    train(cfg, bundle=fresh(debug_bundle), log=lambda m: None)
    evals = [r for r in read_metrics(tmp_path / "gap" / "metrics.jsonl") if "val_loss" in r]
    names = {"val/gap/image->text", "val/gap/text->image", "val/gap/speech->text", "val/gap/text->speech"}
    assert [r["step"] for r in evals] == [0, 2]
    assert all({k for k in r if k.startswith("val/gap/")} == names for r in evals)
    assert all(abs(r[k]) < 5 for r in evals for k in names)
    off = config(packed, tmp_path / "off", val_data=str(packed[0]), steps=1, gap_pairs=0)
    assert not any(k.startswith("val/gap/") for k in train(off, bundle=fresh(debug_bundle), log=lambda m: None)
                   ["last_eval"])


def test_lora_trains_adapters_and_only_the_new_vocabulary_rows(packed, tmp_path, debug_bundle):
    pytest.importorskip("peft")
    b = fresh(debug_bundle)
    before = {k: v.clone() for k, v in b.model.state_dict().items()}
    cfg = config(packed, tmp_path / "lora", steps=3, finetune="lora", lora_r=4, export=True, lr=1e-2)
    train(cfg, bundle=b, log=lambda m: None)
    from anygpt.bundles import load_bundle

    after = load_bundle(tmp_path / "lora" / "bundle").model.state_dict()
    base = debug_bundle.layout.base_vocab_size
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(after[name][:base], before[name][:base])  # text rows untouched
        assert not torch.equal(after[name][base:], before[name][base:])  # modality rows learned
    assert not torch.equal(after["model.layers.0.self_attn.q_proj.weight"],
                           before["model.layers.0.self_attn.q_proj.weight"])  # LoRA merged in


def test_recipes_follow_table_8_and_every_shipped_recipe_loads():
    from anygpt.train.recipe import recipe_names

    assert {"pretrain", "instruct", "lora"} <= set(recipe_names())
    for name in recipe_names():
        load_recipe(name)
    pre, ins = load_recipe("pretrain"), load_recipe("instruct")
    assert (pre.lr, ins.lr) == (6e-5, 2e-5)
    assert pre.warmup_ratio == ins.warmup_ratio == 0.03 and pre.grad_clip == 1.0 and pre.max_len == 4500
    assert pre.weight_decay == 0 and ins.loss_on == "assistant"
    cfg = load_recipe("pretrain", {"steps": 100}, ["lr=1e-4", "lora_targets=q_proj,v_proj", "compile=off"])
    assert cfg.lr == 1e-4 and cfg.lora_targets == ["q_proj", "v_proj"] and cfg.steps == 100
    lrs = [lr_at(s, 100, pre) for s in range(100)]
    assert lrs[2] == pytest.approx(6e-5) and lrs[0] < lrs[1] < lrs[2]  # 3 warmup steps
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 1e-7 + 6e-5 * 0.01


def test_tiny_mixture_budgets_match_their_recipes():
    """Each tiny stage's token budget is what its recipe's steps consume (within 3 %): the run covers
    its mixture as many times as its recipe's epochs say, no less and no more. The stages are those
    scripts/train_tiny.sh trains."""
    import re
    from importlib import resources

    script = (Path(__file__).parents[1] / "scripts" / "train_tiny.sh").read_text()
    stages = re.search(r"^for stage in ([\w ]+); do", script, flags=re.M).group(1).split()
    folder = resources.files("anygpt.train").joinpath("recipes", "tiny-mixtures")
    for stage in stages:
        mix = MixConfig.from_toml(Path(str(folder.joinpath(f"tiny_{stage}.toml"))))
        cfg = load_recipe(f"tiny-{stage}")
        consumed = cfg.steps * cfg.micro_batch * cfg.grad_accum * cfg.max_len
        # packed rows are not full (stage 10 pads 2.3 %), so the steps' row tokens exceed the budget a little
        assert abs(mix.budget_tokens * cfg.epochs / consumed - 1) < 0.03, (stage, mix.budget_tokens, consumed)
        assert {d.name for d in mix.datasets} >= {"image_pairs", "speech_pairs", "music_pairs"}

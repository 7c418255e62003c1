"""What the command line says besides its results: no noise, plain reasons, refusals before any work."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

from vlexplore import cli, cli_output
from vlexplore.cluster.kmeans import kmeans


@pytest.fixture
def same_folder(tmp_path, write_image):
    """Six copies of one image: no k-means can find two groups in them."""
    root = tmp_path / "same"
    for i in range(6):
        write_image(root / f"{i}.png", colour=(200, 40, 40), seed=0)
    return root


def _run(args, capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_unsupported_out_extension_is_refused_before_any_scan(tmp_path, monkeypatch, capsys):
    import vlexplore.pipeline as pipeline

    def no_scan(*args, **kwargs):
        raise AssertionError("the folder was scanned before --out was checked")

    monkeypatch.setattr(pipeline, "scan", no_scan)
    for command in (["cluster"], ["search", "--image", str(tmp_path / "q.png")], ["duplicates"]):
        out = tmp_path / "table.xlsx"
        code, _, err = _run([command[0], str(tmp_path), *command[1:], "--out", str(out)], capsys)
        assert code == 2
        assert "--out table.xlsx" in err
        assert ".csv or .parquet" in err
        assert not out.exists()


def test_fewer_clusters_than_k_are_explained_and_no_internal_lines_are_printed(same_folder, tmp_path, capsys):
    code, out, err = _run(
        ["cluster", str(same_folder), "--k", "2", "--cache-dir", str(tmp_path / "c")], capsys
    )
    assert code == 0, err
    assert "6 images → 1 clusters" in out
    assert "asked for --k 2, but kmeans found only 1 distinct group" in err
    # the provenance keeps the backend, the restarts and k; the terminal does not show them
    for stray in ("kmeans_backend", "kmeans_n_init", "\nk: "):
        assert stray not in "\n" + out
    assert "ConvergenceWarning" not in err


def test_no_note_when_k_is_met(image_folder, tmp_path, capsys):
    code, _, err = _run(
        ["cluster", str(image_folder.root), "--k", "3", "--cache-dir", str(tmp_path / "c")], capsys
    )
    assert code == 0, err
    assert "distinct group" not in err


@pytest.mark.parametrize("backend", ["sklearn", "minibatch", "faiss"])
def test_kmeans_on_identical_rows_raises_no_convergence_warning(backend):
    if backend == "faiss":
        pytest.importorskip("faiss")
    X = np.ones((6, 4), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = kmeans(X, 2, backend=backend)
    assert len(np.unique(fit.labels)) == 1


def test_the_cli_drops_sklearn_convergence_warnings(capsys):
    from sklearn.exceptions import ConvergenceWarning

    with cli._warnings_as_lines():
        warnings.warn(
            "Number of distinct clusters (1) found smaller than n_clusters (2)",
            ConvergenceWarning,
            stacklevel=1,
        )
        warnings.warn("something else", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert "distinct clusters" not in err
    assert "warning: something else" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_fully_cached_run_draws_no_bar(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(cli_output.sys, "stderr", term)
    on_progress = cli_output.tqdm_progress("embedding")
    on_progress(6, 6)  # everything came from the cache: no bar, so no "26843545.60img/s"
    assert term.getvalue() == ""


def test_the_bar_starts_at_the_cached_count(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(cli_output.sys, "stderr", term)
    on_progress = cli_output.tqdm_progress("embedding")
    on_progress(4, 6)
    on_progress(6, 6)
    text = term.getvalue()
    assert "4/6" in text
    assert "6/6" in text
    assert "0/6" not in text  # the cached images are the bar's start, not work done in no time


def test_transformers_loading_bars_are_off_and_download_bars_stay():
    pytest.importorskip("transformers")
    import huggingface_hub.utils
    import transformers.utils.logging as tlog

    try:
        cli_output.quiet_model_loading()
        assert not tlog.is_progress_bar_enabled()
        assert not huggingface_hub.utils.are_progress_bars_disabled()
    finally:
        tlog.enable_progress_bar()


def test_confidence_asks_fewer_neighbours_in_small_clusters():
    from vlexplore.nouns import confident_for_training, knn_indices

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8))
    X = np.repeat(centres, 2, axis=0) + 0.01 * rng.normal(size=(12, 8))  # six pairs
    labels = np.repeat(np.arange(6), 2)
    nb = knn_indices(X.astype(np.float32), 10)
    notes: list[str] = []
    mask, k = confident_for_training(labels, nb, 10, 0.5, 6, notes)
    assert k == 1
    assert mask.all()
    assert notes == ["clusters this small are judged confident on 1 neighbour(s)"]
    notes = []
    mask, _ = confident_for_training(np.arange(12), nb, 10, 0.5, 12, notes)  # every image alone
    assert not mask.any()
    assert "the starting k-means clusters are kept" in notes[-1]


def test_centres_on_a_small_folder_run_and_say_what_they_changed(tmp_path, write_image, capsys):
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 220), "grey": (128, 128, 128)}
    for name, rgb in colours.items():
        for i in range(3):
            write_image(tmp_path / "small" / name / f"{i}.png", colour=rgb, seed=i)
    code, out, err = _run(
        [
            "cluster",
            str(tmp_path / "small"),
            "--representation",
            "centres",
            "--k",
            "6",
            "--nouns",
            "red, green, blue, grey, apple, leaf, sky, stone, car, bird",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "12 images →" in out
    assert "note: clusters this small are judged confident on" in out


def _four_kinds(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """80 unit rows of four kinds of uneven size (35/25/12/8), like a small mixed folder."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    sizes = [35, 25, 12, 8]
    X = np.concatenate([c + 0.6 * rng.normal(size=(s, 32)) for c, s in zip(centres, sizes, strict=True)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), np.repeat(np.arange(4), sizes)


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
def test_default_restarts_make_small_folder_kmeans_stable_across_seeds(backend):
    from sklearn.metrics import adjusted_rand_score

    from vlexplore.cluster.kmeans import default_n_init

    if backend == "faiss":
        pytest.importorskip("faiss")
    X, y = _four_kinds()
    assert default_n_init(len(X)) >= 20  # small folders get many restarts
    one = [kmeans(X, 4, seed=s, n_init=1, backend=backend).labels for s in range(5)]
    assert min(adjusted_rand_score(y, lab) for lab in one) < 0.9  # one restart swings with the seed
    default = [kmeans(X, 4, seed=s, backend=backend).labels for s in range(5)]
    assert all(adjusted_rand_score(y, lab) == 1.0 for lab in default)


def test_errors_name_the_flag_not_python_syntax(same_folder, tmp_path, capsys):
    code, _, err = _run(
        ["cluster", str(same_folder), "--k", "12", "--cache-dir", str(tmp_path / "c")], capsys
    )
    assert code == 2
    assert "error: --k: 12 clusters asked for, but there are only 6 images" in err
    assert "k=" not in err


def test_library_errors_carry_the_field_and_neutral_words():
    from vlexplore.cluster.checks import check_k
    from vlexplore.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        check_k(5, 3)
    assert info.value.option == "k"
    assert "k=" not in str(info.value)
    assert cli_output.error_line(info.value).startswith("error: --k: 5 clusters asked for")
    assert cli_output.error_line(ConfigError("plain")) == "error: plain"  # no field, no prefix


def test_cluster_names_from_captions_keep_multi_word_terms(tmp_path, write_image, capsys):
    root = tmp_path / "things"
    captions = {
        "pins": ["a safety pin on a web site", "a photo of a safety pin", "a safety pin, a web site"],
        "books": ["a comic book jacket", "a comic book jacket on a shelf", "comic book jacket"],
    }
    rows = ["path,caption"]
    for i, (kind, texts) in enumerate(captions.items()):
        for j, text in enumerate(texts):
            write_image(root / kind / f"{j}.png", colour=(200, 40, 40) if i else (40, 40, 200), seed=j)
            rows.append(f'{kind}/{j}.png,"{text}"')
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    code, out, err = _run(
        [
            "cluster",
            str(root),
            "--k",
            "2",
            "--naming",
            "captions",
            "--captions",
            str(tmp_path / "captions.csv"),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "safety pin" in out
    assert "comic book jacket" in out
    for split in ("pin · safety", "book · comic", "book jacket · comic book"):
        assert split not in out


def test_an_unsupported_export_extension_is_refused_before_any_scan(tmp_path, monkeypatch, capsys):
    import vlexplore.pipeline as pipeline

    def no_scan(*args, **kwargs):
        raise AssertionError("the folder was scanned before --export was checked")

    monkeypatch.setattr(pipeline, "scan", no_scan)
    code, _, err = _run(["embed", str(tmp_path), "--export", str(tmp_path / "vectors.csv")], capsys)
    assert code == 2
    assert "--export vectors.csv" in err
    assert ".parquet" in err

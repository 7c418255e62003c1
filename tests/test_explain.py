"""Tests of vlexplore.explain: counting-based unique keywords, c-TF-IDF, names, representatives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlexplore.errors import ConfigError
from vlexplore.explain import cluster_keywords, cluster_names, ctfidf_keywords, representatives

TEXTS = [
    "a photo of a t-shirt and a dog",
    "dog in the park",
    "cat on a sofa",
    "a red t-shirt",
    "cat and dog",
    "",
]
LABELS = [0, 0, 1, 2, 1, -1]

# --- cluster_keywords ----------------------------------------------------------------------------


def test_cluster_keywords_of_a_known_example():
    kw = cluster_keywords(TEXTS, LABELS, top_n=3)
    assert kw == {
        -1: [],
        0: ["dog", "park", "t-shirt"],  # "dog" is in 2/2 texts here, 1/2 in cluster 1; "photo" is boilerplate
        1: ["cat", "sofa"],
        2: ["red t-shirt"],  # the phrase is kept whole: its words "red" and "t-shirt" leave this list
    }


def test_phrases_end_at_punctuation_stop_words_and_numbers():
    texts = ["a photo of a letter opener, or a bulletproof vest", "letter opener - 3 bulletproof vest"]
    kw = cluster_keywords(texts, [0, 0], top_n=10)
    assert kw == {0: ["bulletproof vest", "letter opener"]}
    kw = cluster_keywords(texts, [0, 0], top_n=10, ngram_range=(1, 1))
    assert kw == {0: ["bulletproof", "letter", "opener", "vest"]}


def test_phrases_are_kept_whole_and_preferred_to_their_words():
    # before: "pin · safety · site" (ties sorted the words before the phrase)
    kw = cluster_keywords(["a photo of a safety pin, or a web site"] * 2, [0, 0])
    assert kw == {0: ["safety pin", "web site"]}
    assert cluster_names(kw) == {0: "safety pin · web site"}
    # a phrase replaces its more frequent words, in the place of the first of them
    texts = ["a bolo tie, or a windsor tie", "a bolo tie, or a bow tie", "a windsor tie", "a closed circuit"]
    kw = cluster_keywords(texts, [0, 0, 0, 1], top_n=3)
    assert kw == {0: ["bolo tie", "windsor tie", "bow tie"], 1: ["closed circuit"]}
    assert "tie" not in kw[0]
    assert "circuit" not in kw[1]


def test_a_word_much_more_frequent_than_its_phrase_stays_beside_it():
    texts = ["a dog", "a dog", "a dog", "a brown dog"]
    assert cluster_keywords(texts, [0, 0, 0, 0], top_n=3) == {0: ["dog", "brown dog"]}
    # the phrase holds half of the word's count: it replaces the word
    texts = ["a dog", "a brown dog"]
    assert cluster_keywords(texts, [0, 0], top_n=3) == {0: ["brown dog"]}


def test_noise_keywords_keep_phrases_whole_too():
    kw = cluster_keywords(["a safety pin", "a safety pin", "dog"], [-1, -1, 0], top_n=3)
    assert kw == {-1: ["safety pin"], 0: ["dog"]}


def test_extra_stop_words_can_be_changed():
    texts = ["a photo of a dog", "a photo of a cat"]
    assert cluster_keywords(texts, [0, 0], top_n=3) == {0: ["cat", "dog"]}
    assert cluster_keywords(texts, [0, 0], top_n=3, extra_stop_words=()) == {0: ["photo", "cat", "dog"]}
    assert cluster_keywords(texts, [0, 0], top_n=3, extra_stop_words=["Cat"]) == {0: ["photo", "dog"]}


def test_a_term_counts_once_per_text():
    kw = cluster_keywords(["dog dog dog dog", "cat", "cat"], [0, 0, 0], top_n=2, ngram_range=(1, 1))
    assert kw == {0: ["cat", "dog"]}


def test_ties_are_broken_alphabetically():
    kw = cluster_keywords(["zebra apple mango"], [4], top_n=2, ngram_range=(1, 1))
    assert kw == {4: ["apple", "mango"]}


def test_shared_term_goes_to_the_cluster_where_its_share_is_highest():
    texts = ["dog leash", "dog ball", "ball", "ball", "dog"]
    labels = [0, 0, 0, 0, 1]
    # cluster 0: ball 3/4, dog 2/4, leash 1/4; cluster 1: dog 1/1 → dog goes to cluster 1.
    kw = cluster_keywords(texts, labels, top_n=2, ngram_range=(1, 1))
    assert kw == {0: ["ball", "leash"], 1: ["dog"]}


def test_equal_share_goes_to_the_higher_count_then_the_lower_id():
    kw = cluster_keywords(["sun", "sun", "sun", "moon"], [0, 0, 1, 2], top_n=1, ngram_range=(1, 1))
    assert kw == {0: ["sun"], 1: [], 2: ["moon"]}
    kw = cluster_keywords(["sun", "sun"], [5, 3], top_n=1, ngram_range=(1, 1))
    assert kw == {3: ["sun"], 5: []}


def test_refilled_terms_are_made_unique_again():
    # Both clusters rank a, b, c. Cluster 1 wins a and b (higher shares); cluster 0 refills with c,
    # which cluster 1 also has in its refilled list, but cluster 0 holds it more often.
    texts = ["alpha beta gamma", "alpha gamma", "gamma", "alpha beta", "alpha beta gamma delta"]
    labels = [0, 0, 0, 1, 1]
    kw = cluster_keywords(texts, labels, top_n=2, ngram_range=(1, 1))
    assert kw == {0: ["gamma"], 1: ["alpha", "beta"]}
    kw3 = cluster_keywords(texts, labels, top_n=3, ngram_range=(1, 1))
    assert kw3 == {0: ["gamma"], 1: ["alpha", "beta", "delta"]}


def test_noise_gets_keywords_but_does_not_compete():
    kw = cluster_keywords(["dog", "dog", "dog cat"], [0, -1, -1], top_n=2, ngram_range=(1, 1))
    assert kw == {-1: ["dog", "cat"], 0: ["dog"]}


def test_hyphenated_words_stay_one_term_and_short_or_numeric_tokens_are_dropped():
    kw = cluster_keywords(["a t-shirt x 42 3d", "t-shirt"], [0, 0], top_n=5, ngram_range=(1, 1))
    assert kw == {0: ["t-shirt"]}


def test_unigrams_only_with_ngram_range_1_1():
    kw = cluster_keywords(["red car", "red car"], [0, 0], top_n=5, ngram_range=(1, 1))
    assert kw == {0: ["car", "red"]}


@pytest.mark.parametrize("texts", [["", ""], ["the a of", "and"], [None, None]])
def test_no_countable_words_gives_empty_lists(texts):
    assert cluster_keywords(texts, [0, 1]) == {0: [], 1: []}
    assert ctfidf_keywords(texts, [0, 1]) == {0: [], 1: []}


def test_empty_input_gives_no_clusters():
    assert cluster_keywords([], []) == {}


words = st.sampled_from(["dog", "cat", "car", "tree", "red", "blue", "sky", "ball", "park", "shoe"])


@given(
    st.lists(
        st.tuples(st.lists(words, max_size=6).map(" ".join), st.integers(-1, 4)), min_size=1, max_size=40
    ),
    st.integers(1, 4),
)
@settings(max_examples=150, deadline=None)
def test_keywords_are_unique_across_clusters_and_at_most_top_n(rows, top_n):
    texts = [t for t, _ in rows]
    labels = np.array([lab for _, lab in rows])
    kw = cluster_keywords(texts, labels, top_n=top_n)
    assert set(kw) == set(labels.tolist())
    competing = [term for c, terms in kw.items() if c != -1 for term in terms]
    assert len(competing) == len(set(competing))
    for c, terms in kw.items():
        assert len(terms) <= top_n
        assert len(terms) == len(set(terms))
        member_text = " ".join(t for t, lab in rows if lab == c)
        for term in terms:
            assert all(w in member_text for w in term.split())


# --- ctfidf_keywords -----------------------------------------------------------------------------


def test_ctfidf_of_a_known_example():
    # tf: c0 apple 2 banana 1 (3 words), c1 banana 1 cherry 1 (2 words); A = 2.5
    # idf: apple = banana = log(1 + 2.5/2), cherry = log(1 + 2.5/1)
    # c0: apple 2/3·0.81 > banana 1/3·0.81; c1: cherry 1/2·1.25 > banana 1/2·0.81
    kw = ctfidf_keywords(["apple apple", "banana", "banana cherry"], [0, 0, 1], top_n=5, ngram_range=(1, 1))
    assert kw == {0: ["apple", "banana"], 1: ["cherry", "banana"]}


def test_ctfidf_makes_no_bigrams_across_texts():
    kw = ctfidf_keywords(["red", "car"], [0, 0], top_n=5)
    assert kw == {0: ["car", "red"]}


def test_ctfidf_respects_top_n_and_includes_noise():
    kw = ctfidf_keywords(["lion tiger bear wolf", "owl hawk"], [0, -1], top_n=2, ngram_range=(1, 1))
    assert [len(v) for v in kw.values()] == [2, 2]
    assert set(kw) == {-1, 0}


# --- cluster_names -------------------------------------------------------------------------------


def test_names_join_the_first_keywords():
    names = cluster_names({0: ["dog", "leash", "park", "ball"], 1: ["cat"]})
    assert names == {0: "dog · leash · park", 1: "cat"}


def test_names_skip_redundant_keywords():
    names = cluster_names({0: ["dog", "dog park", "park", "leash", "ball"]}, n_words=2)
    assert names == {0: "dog park · leash"}


def test_names_of_prototype_clusters_and_noise():
    kw = {-1: ["x"], 0: ["dog"], 2: ["sofa", "lamp"]}
    names = cluster_names(kw, prototypes=["a dog", "a cat"], noise_name="noise")
    assert names == {-1: "noise", 0: "a dog", 1: "a cat", 2: "sofa · lamp"}


def test_noise_is_called_other_by_default_and_empty_clusters_get_a_number():
    assert cluster_names({-1: [], 3: []}) == {-1: "other", 3: "cluster 3"}


def test_n_words_must_be_positive():
    with pytest.raises(ConfigError, match="n_words must be a positive number of words, got 0"):
        cluster_names({0: ["a"]}, n_words=0)


# --- representatives -----------------------------------------------------------------------------


def test_representatives_are_ordered_by_closeness_to_the_cluster_mean():
    X = np.array([[1, 0], [0.6, 0.8], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    reps = representatives(X, [0, 0, 0, 0, -1])
    assert set(reps) == {-1, 0}
    np.testing.assert_array_equal(reps[0], [1, 2, 0, 3])  # mean points at 45°; ties by index
    np.testing.assert_array_equal(reps[-1], [4])
    assert reps[0].dtype == np.int64


def test_representatives_use_cosine_not_length():
    X = np.array([[10, 0], [0, 1], [1, 1], [0.1, 0.1]], dtype=np.float32)
    reps = representatives(X, [0, 0, 0, 0])
    assert reps[0][:2].tolist() == [2, 3]


# --- bad parameters ------------------------------------------------------------------------------


def test_texts_and_labels_of_different_length_raise():
    with pytest.raises(ConfigError, match="got 3 texts but 2 labels"):
        cluster_keywords(["a", "b", "c"], [0, 1])


def test_top_n_zero_raises():
    with pytest.raises(ConfigError, match="top_n must be a positive number of keywords, got 0"):
        cluster_keywords(["dog"], [0], top_n=0)


def test_bad_ngram_range_raises():
    with pytest.raises(ConfigError, match=r"ngram_range.*\(2, 1\)"):
        cluster_keywords(["dog"], [0], ngram_range=(2, 1))


def test_extra_stop_words_as_a_string_raises():
    with pytest.raises(
        ConfigError, match="extra_stop_words must be a collection of words, got the string 'photo'"
    ):
        cluster_keywords(["dog"], [0], extra_stop_words="photo")


def test_float_labels_raise():
    with pytest.raises(ConfigError, match="integer cluster ids"):
        ctfidf_keywords(["dog"], [0.5])


def test_representatives_follow_the_float64_definition():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 16)).astype(np.float32) * rng.uniform(0.1, 10, (500, 1)).astype(np.float32)
    labels = rng.integers(-1, 5, 500)
    reps = representatives(X, labels)
    unit = X.astype(np.float64) / np.linalg.norm(X.astype(np.float64), axis=1, keepdims=True)
    for c, idx in reps.items():
        members = np.flatnonzero(labels == c)
        assert sorted(idx.tolist()) == members.tolist()
        mean = unit[members].mean(axis=0)
        sims = unit[idx] @ (mean / np.linalg.norm(mean))
        assert (np.diff(sims) <= 1e-6).all()  # nearest to the mean first


def test_representatives_order_duplicates_by_index():
    X = np.array([[1, 0], [0.5, 0.5], [0, 1], [0.5, 0.5], [1, 0.1]], dtype=np.float32)
    reps = representatives(X, [0, 0, 0, 0, 0])
    assert reps[0].tolist().index(1) + 1 == reps[0].tolist().index(3)  # equal rows: the lower index first


def test_representatives_labels_shape_mismatch_raises():
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        representatives(np.eye(3), [0, 1])

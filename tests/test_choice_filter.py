"""Answer extraction: free-form model answers -> A-D, unmapped when there is no single answer."""

from __future__ import annotations

import pickle

import pytest

from lm_eval_audio.filters.choice import (
    UNMAPPED,
    ChoiceFilter,
    Extracted,
    extract_choice,
    extraction_failure,
    judge_rate,
)

CHOICES = ["London", "Paris", "Rome", "Berlin"]
NUM_CHOICES = ["−7", "−1", "1", "7"]

# (model output, expected letter or None for unmapped)
CASES = [
    # the letter alone, in many wrappings
    ("B", "B"), ("b", "B"), ("B.", "B"), ("(B)", "B"), ("[C]", "C"), ("D)", "D"),
    ("**A**", "A"), ("  c  \n", "C"), ("Option D", "D"), ("option a.", "A"), ("Answer: C", "C"),
    ("（Ｂ）", "B"), ("B。", "B"), ("«C»", "C"), ("`D`", "D"),
    # explicit statements
    ("The answer is B.", "B"), ("The correct answer is (C).", "C"), ("the answer is d", "D"),
    ("Answer: **A**", "A"), ("The best answer would be C.", "C"), ("Final answer: B", "B"),
    ("I think the correct option is D because the other options are wrong.", "D"),
    ("Sure! The answer is B, Paris, since it is the capital of France.", "B"),
    ("Let me think step by step. France's capital city is well known. So the answer is B.", "B"),
    ("The answer is A. Wait, no: the capital is Paris, so the answer is actually B.", "B"),
    ("I would choose C.", "C"), ("I'd go with option A.", "A"), ("Correct answer: option D", "D"),
    ("The right choice is (B) Paris.", "B"), ("Answer - C", "C"),
    ("The answer is B, a city in France.", "B"),
    # other languages and punctuation
    ("La respuesta correcta es C.", "C"), ("La réponse est : B", "B"), ("Die Antwort ist D.", "D"),
    ("La risposta corretta è A.", "A"), ("A resposta correta é B.", "B"),
    ("答案是B。", "B"), ("答案：C", "C"), ("正确答案是 D", "D"), ("Ответ: В", "B"),
    ("答えは A です。", "A"),
    # a leading labelled option
    ("B. Paris", "B"), ("C) Rome is the capital of Italy, not France.", "C"), ("(D) Berlin", "D"),
    ("A: London", "A"), ("B - Paris is correct.", "B"),
    # the option text itself
    ("Paris", "B"), ("paris.", "B"), ("It is Paris.", "B"), ("The capital of France is Paris!", "B"),
    ("BERLIN", "D"),
    # letters mentioned once in prose
    ("Considering the options, (C) fits best.", "C"), ("I believe option B is right here.", "B"),
    # two letters: no answer
    ("A or B", None), ("The answer is A or B.", None), ("B and D", None), ("A/B", None),
    ("Either (A) or (C) could be right.", None), ("Option A and option D are both plausible.", None),
    ("The answer is either B or C.", None),
    # refusals and non-answers
    ("I'm sorry, I can't help with that.", None), ("I don't know.", None), ("", None), ("   ", None),
    ("As an AI language model, I cannot answer questions about this topic.", None),
    ("A good question! Let me think about it.", None), ("This question is about geography.", None),
    ("None of the above.", None), ("E", None), ("The answer is E.", None),
    ("Apple", None), ("All of them are capitals.", None),
    ("London and Paris are both European capitals.", None),
]


@pytest.mark.parametrize("output, expected", CASES)
def test_extract_choice(output, expected):
    letter, method = extract_choice(output, CHOICES)
    assert letter == (expected or UNMAPPED), (output, method)


def test_case_count():
    assert len(CASES) >= 60


@pytest.mark.parametrize("output, expected", [("−7", "A"), ("7", "D"), ("The answer is −1", "B"), ("1", "C")])
def test_numeric_option_text(output, expected):
    assert extract_choice(output, NUM_CHOICES)[0] == expected


def test_option_text_needs_choices():
    assert extract_choice("Paris", None)[0] == UNMAPPED
    assert extract_choice(None, CHOICES) == (UNMAPPED, "not_text")


def test_filter_and_metrics(monkeypatch):
    monkeypatch.delenv("LM_EVAL_AUDIO_JUDGE", raising=False)
    docs = [{"choices": CHOICES}, {"choices": CHOICES}]
    out = ChoiceFilter().apply([["The answer is C."], ["no idea"]], docs)
    assert out == [["C"], [UNMAPPED]]
    assert out[0][0].method == "statement"
    assert extraction_failure(["C"], out[0]) == 0.0
    assert extraction_failure(["B"], out[1]) == 1.0
    assert judge_rate(["C"], out[0]) == 0.0
    assert judge_rate(["C"], [Extracted("C", "judge")]) == 1.0
    again = pickle.loads(pickle.dumps(out[0][0]))
    assert again == "C" and again.method == "statement"


def test_filter_resolves_through_lm_eval_registry():
    from lm_eval.api.registry import get_filter, get_metric, get_metric_aggregation, is_higher_better

    from lm_eval_audio.registration import register_components

    register_components()  # what our tasks' utils.py and our models do as they load
    assert get_filter("choice_letter") is ChoiceFilter
    assert get_metric("extraction_failure") is extraction_failure
    assert get_metric_aggregation("extraction_failure")([1.0, 0.0]) == 0.5
    assert is_higher_better("extraction_failure") is False


# Held-out-style model outputs with a lower-case "a", "b", "c" or "d": where "a" is the article
# (or part of a word) nothing is mapped; where a letter is stated, it is. Options are chosen so
# that no option text occurs in the sentences: only the letter rules can decide.
OPAQUE = ["mitochondria", "ribosome", "nucleus", "vacuole"]
ARTICLES = [
    "The answer is a matter of debate.",
    "I would go with a different approach.",
    "I'd go with a careful reading of the question first.",
    "The correct answer is a bit unclear to me.",
    "The answer would be a guess at best.",
    "The best choice a student can make is to review the material.",
    "I'd say a lot depends on the context.",
    "Answer: a question like this needs more context.",
    "The answer is a.m. in most time zones.",
    "The answer is a in-depth topic I cannot settle.",
    "Going with a hunch would not be responsible here.",
    "My final answer is a complicated one.",
    "I choose a careful reading over guessing.",
    "This is a hard question about cell biology.",
    "It's a tricky one; I'm not sure.",
    "There is a catch in the wording.",
    "That would be a guess.",
    "a cell organelle, probably",
    "A lot of textbooks cover this.",
    "I cannot answer with a single letter.",
    "The answer is a, b, or c.",
    "The answer is b or a.",
    "Option b and option (a) both look plausible.",
    "The answer is (a) or (d).",
]
STATED = [
    ("a", "A"), ("a.", "A"), ("(a)", "A"), ("[a]", "A"), ("a)", "A"), ("**a**", "A"),
    ("Answer: a", "A"), ("answer: a.", "A"), ("The answer is a.", "A"), ("The answer is (a).", "A"),
    ("I'd say (a)", "A"), ("I'd say (a), the mitochondrion's role.", "A"), ("I would say b.", "B"),
    ("The correct option is b", "B"), ("The correct answer is c, since it stores DNA.", "C"),
    ("the answer is d", "D"), ("The answer is 'a'.", "A"), ("Answer: a - it makes energy", "A"),
    ("option a is wrong", "A"), ("The answer is a because it makes ATP.", "A"),
    ("The answer is a, since it makes ATP.", "A"), ("I'd go with a; it makes ATP.", "A"),
    ("b) it builds proteins", "B"), ("a) it makes energy", "A"), ("c. it holds the genome", "C"),
    ("d: it stores water", "D"), ("(c) it holds the genome", "C"), ("I think (d) fits best.", "D"),
    ("Considering the options, choice c is right.", "C"), ("The answer is B, a cell organelle.", "B"),
    ("The answer is C and a good one.", "C"), ("The answer is a, not b.", "A"),
    ("La respuesta correcta es b.", "B"), ("Final answer: a", "A"),
]


@pytest.mark.parametrize("output", ARTICLES)
def test_article_or_two_letters_maps_nothing(output):
    letter, method = extract_choice(output, OPAQUE)
    assert letter == UNMAPPED, (output, letter, method)


@pytest.mark.parametrize("output, expected", STATED)
def test_stated_lower_case_letters_map(output, expected):
    letter, method = extract_choice(output, OPAQUE)
    assert letter == expected, (output, letter, method)


def test_article_cases_are_many():
    assert len(ARTICLES) >= 20 and len(STATED) >= 30

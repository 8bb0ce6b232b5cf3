"""Tests for the synthetic sequence-to-sequence tasks."""

import datetime
import random
import re

import pytest

from keras_s2s import tasks

MARCH_THIRD = datetime.date(2021, 3, 3)

REQUIRED_RENDERINGS = {
    "March 3, 2021",
    "3 March 2021",
    "Mar 3 2021",
    "03/03/2021",
    "Wednesday, March 3, 2021",
    "3rd of March 2021",
}

KOREAN_VERB_FORMS = {form for verb in tasks.VERBS.values()
                     for form in (verb.korean_present, verb.korean_past,
                                  verb.korean_future)}


@pytest.fixture(scope="module")
def date_pairs():
    return tasks.generate_pairs("dates", 3000, seed=1)


@pytest.fixture(scope="module")
def toy_ko_pairs():
    return tasks.generate_pairs("toy-ko", 2000, seed=1)


def test_required_date_renderings_exist():
    renderings = {tasks.format_date(MARCH_THIRD, name) for name in tasks.DATE_FORMATS}
    assert REQUIRED_RENDERINGS <= renderings


def test_every_date_format_is_generated(date_pairs):
    # Lower-casing both sides lets one check cover all three casing styles.
    sources = [(source.lower(), datetime.date.fromisoformat(target))
               for source, target in date_pairs]
    for name in tasks.DATE_FORMATS:
        found = any(source == tasks.format_date(date, name).lower()
                    for source, date in sources)
        assert found, name


@pytest.mark.parametrize("day, expected", [
    (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
    (13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (31, "31st"),
])
def test_ordinal_suffixes(day, expected):
    assert tasks.ordinal(day) == expected


def test_date_targets_are_iso_dates_in_range(date_pairs):
    for _, target in date_pairs:
        date = datetime.date.fromisoformat(target)
        assert date.isoformat() == target
        assert 1900 <= date.year <= 2099


def test_date_sources_use_every_case(date_pairs):
    sources = [source for source, _ in date_pairs if re.search("[a-zA-Z]", source)]
    assert any(source.isupper() for source in sources)
    assert any(source.islower() for source in sources)
    assert any(not source.isupper() and not source.islower() for source in sources)


def test_weekday_matches_date(date_pairs):
    weekdays = [name.lower() for name in tasks.WEEKDAY_NAMES]
    checked = 0
    for source, target in date_pairs:
        first_word = source.split(",")[0].lower()
        for index, weekday in enumerate(weekdays):
            if first_word in (weekday, weekday[:3]):
                assert datetime.date.fromisoformat(target).weekday() == index
                checked += 1
    assert checked > 100


def test_toy_ko_examples():
    assert tasks.toy_ko_sentence("I", "eat", "apple", "present") == (
        "I eat an apple", "나는 사과를 먹는다")
    assert tasks.toy_ko_sentence(
        "my friend", "buy", "book", "past", adjective="new",
        place="at the store", time="yesterday") == (
        "My friend bought a new book at the store yesterday",
        "내 친구는 어제 가게에서 새 책을 샀다")


def test_english_agreement_articles_and_future():
    assert tasks.toy_ko_sentence("he", "watch", "movie", "present")[0] == (
        "He watches a movie")
    assert tasks.toy_ko_sentence(
        "they", "drink", "water", "future", time="tomorrow") == (
        "They will drink water tomorrow", "그들은 내일 물을 마실 것이다")
    english, _ = tasks.toy_ko_sentence("she", "read", "book", "past", adjective="old")
    assert english == "She read an old book"
    english, _ = tasks.toy_ko_sentence("we", "eat", "apple", "present", adjective="red")
    assert english == "We eat a red apple"


def test_topic_particles_on_all_subjects():
    expected = {"나": "나는", "너": "너는", "그": "그는", "그녀": "그녀는", "우리": "우리는",
                "그들": "그들은", "선생님": "선생님은", "내 친구": "내 친구는",
                "학생": "학생은", "어머니": "어머니는", "아이": "아이는"}
    assert {korean for korean, _ in tasks.SUBJECTS.values()} == set(expected)
    for noun, marked in expected.items():
        assert tasks.with_topic_particle(noun) == marked


def test_object_particles_on_all_objects():
    consonant_final = {"빵", "밥", "물", "책", "신문", "그림", "가방"}
    for korean, _, _ in tasks.OBJECTS.values():
        particle = "을" if korean in consonant_final else "를"
        assert tasks.with_object_particle(korean) == korean + particle


def test_non_hangul_word_is_rejected():
    with pytest.raises(ValueError, match="word"):
        tasks.has_final_consonant("apple")


def test_toy_ko_word_order(toy_ko_pairs):
    topics = [tasks.with_topic_particle(noun) for noun, _ in tasks.SUBJECTS.values()]
    times = {korean: english for english, (korean, _) in tasks.TIME_WORDS.items()}
    places = {korean: english for english, korean in tasks.PLACES.items()}
    for english, korean in toy_ko_pairs:
        assert english[0].isupper() and "  " not in english and "  " not in korean
        verb = next(form for form in KOREAN_VERB_FORMS if korean.endswith(" " + form))
        subject = next(topic for topic in topics if korean.startswith(topic + " "))
        # Between subject and verb Korean puts time, then place, then the object.
        middle = korean[len(subject):-len(verb)].split()
        if middle[0] in times:
            assert english.endswith(" " + times[middle.pop(0)])
        if middle[0] in places:
            assert " " + places[middle.pop(0)] in english
        assert 1 <= len(middle) <= 2 and middle[-1].endswith(("을", "를"))


def test_toy_ko_time_words_agree_with_tense(toy_ko_pairs):
    past = tuple(verb.korean_past for verb in tasks.VERBS.values())
    present = tuple(verb.korean_present for verb in tasks.VERBS.values())
    seen = set()
    for english, korean in toy_ko_pairs:
        words = korean.split()
        if "어제" in words:
            assert korean.endswith(past) and english.endswith("yesterday")
        if "내일" in words:
            assert korean.endswith("것이다") and " will " in english
        if "매일" in words:
            assert korean.endswith(present) and english.endswith("every day")
        seen.update(word for word in ("어제", "내일", "오늘", "매일") if word in words)
    assert seen == {"어제", "내일", "오늘", "매일"}


def test_every_verb_object_tense_combination_builds():
    for verb in tasks.VERBS:
        for obj in tasks.objects_for(verb):
            for tense in tasks.TENSES:
                english, korean = tasks.toy_ko_sentence("the child", verb, obj, tense)
                assert korean.startswith("아이는 ")
                assert korean.split()[-1].endswith("다")


@pytest.mark.parametrize("arguments, name", [
    (("I", "eat", "water", "present"), "obj"),
    (("I", "fly", "apple", "present"), "verb"),
    (("it", "eat", "apple", "present"), "subject"),
    (("I", "eat", "apple", "someday"), "tense"),
    (("I", "drink", "water", "present", "big"), "adjective"),
    (("I", "eat", "apple", "future", None, None, "yesterday"), "time"),
    (("I", "eat", "apple", "present", None, "on the moon"), "place"),
])
def test_toy_ko_sentence_rejects_bad_words(arguments, name):
    with pytest.raises(ValueError, match=name):
        tasks.toy_ko_sentence(*arguments)


@pytest.mark.parametrize("task", tasks.TASK_NAMES)
def test_generate_pairs_is_deterministic(task):
    first = tasks.generate_pairs(task, 200, seed=7)
    assert first == tasks.generate_pairs(task, 200, seed=7)
    assert first != tasks.generate_pairs(task, 200, seed=8)


@pytest.mark.parametrize("task", tasks.TASK_NAMES)
def test_generate_pairs_sources_are_distinct(task):
    pairs = tasks.generate_pairs(task, 1000)
    assert len(pairs) == 1000
    assert len({source for source, _ in pairs}) == 1000


def test_pair_functions_accept_random_generator():
    rng = random.Random(0)
    for make_pair in (tasks.date_pair, tasks.toy_ko_pair):
        source, target = make_pair(rng)
        assert isinstance(source, str) and isinstance(target, str)


@pytest.mark.parametrize("task", tasks.TASK_NAMES)
def test_load_task_splits_are_disjoint(task):
    train, test = tasks.load_task(task, 500, 100, seed=3)
    assert len(train) == 500 and len(test) == 100
    assert not {source for source, _ in train} & {source for source, _ in test}


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="task") as error:
        tasks.generate_pairs("chess", 10)
    assert "'chess'" in str(error.value)
    assert all(name in str(error.value) for name in tasks.TASK_NAMES)
    with pytest.raises(ValueError, match="task"):
        tasks.load_task("chess", 10, 10)


@pytest.mark.parametrize("count", [0, -3, 2.5, "10", True])
def test_bad_count_is_rejected(count):
    with pytest.raises(ValueError, match="count"):
        tasks.generate_pairs("dates", count)


@pytest.mark.parametrize("train_size, test_size, name", [
    (0, 10, "train_size"), (10, 0, "test_size"), (10, 1.0, "test_size"),
])
def test_bad_split_sizes_are_rejected(train_size, test_size, name):
    with pytest.raises(ValueError, match=name):
        tasks.load_task("dates", train_size, test_size)


def test_exhausted_task_raises_instead_of_looping(monkeypatch):
    monkeypatch.setitem(tasks._PAIR_GENERATORS, "dates", lambda rng: ("same", "same"))
    with pytest.raises(ValueError, match="distinct"):
        tasks.generate_pairs("dates", 2)


def test_copy_pairs_repeat_letters_at_every_length():
    pairs = tasks.generate_pairs("copy", 3000, seed=2)
    lengths = {len(source.split()) for source, _ in pairs}
    assert lengths == set(range(tasks.COPY_MIN_LENGTH, tasks.COPY_MAX_LENGTH + 1))
    for source, target in pairs:
        assert source == target
        assert set(source.split()) <= set(tasks.COPY_SYMBOLS)


def test_copy_pair_length_is_controllable():
    rng = random.Random(0)
    assert all(len(tasks.copy_pair(rng, 40, 40)[0].split()) == 40 for _ in range(5))
    with pytest.raises(ValueError, match="min_length"):
        tasks.copy_pair(rng, 5, 4)
    with pytest.raises(ValueError, match="max_length"):
        tasks.copy_pair(rng, 1, 0)

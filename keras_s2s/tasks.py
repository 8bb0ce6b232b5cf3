"""Synthetic sequence-to-sequence tasks that need no downloaded data.

``"dates"`` maps human-written dates such as ``"Wednesday, March 3, 2021"`` to
ISO ``"2021-03-03"``. ``"toy-ko"`` translates a tiny English grammar into Korean,
which moves English subject-verb-object-place-time order to Korean
subject-time-place-object-verb order. ``"copy"`` repeats a random string of 3 to 30
letters: every token must survive the trip through the encoder, so it measures how much a
model can carry from source to target (the context-vector bottleneck of a model without
attention grows with the length). Generators draw from an explicit
``random.Random``, so datasets are reproducible for a given seed.
"""

import datetime
import random
from typing import Callable, NamedTuple

TASK_NAMES = ("dates", "toy-ko", "copy")

# English names are spelled out instead of taken from the calendar module,
# whose names follow the process locale and would make datasets machine dependent.
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
               "August", "September", "October", "November", "December")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                 "Saturday", "Sunday")

# Each template is filled by format_date; add a line here to add a format.
DATE_FORMATS = {
    "month_day_year": "{month_name} {day}, {year}",
    "day_month_year": "{day} {month_name} {year}",
    "short_month_day_year": "{month_short} {day} {year}",
    "padded_numeric": "{month_padded}/{day_padded}/{year}",
    "weekday_month_day_year": "{weekday_name}, {month_name} {day}, {year}",
    "ordinal_of_month_year": "{ordinal} of {month_name} {year}",
    "numeric": "{month}/{day}/{year}",
    "short_month_day_comma_year": "{month_short} {day}, {year}",
    "month_ordinal_year": "{month_name} {ordinal}, {year}",
    "short_weekday_month_day_year": "{weekday_short}, {month_short} {day}, {year}",
    "the_ordinal_of_month_year": "the {ordinal} of {month_name}, {year}",
    "padded_day_short_month_year": "{day_padded} {month_short} {year}",
}

# Casing styles and their sampling weights; most sources keep the template's case.
CASE_STYLES = (("as_written", 0.6), ("lower", 0.2), ("upper", 0.2))

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
ORDINAL_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def _check_choice(name: str, value, choices, context: str = "") -> None:
    """Raises ValueError naming the argument if ``value`` is not in ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}{context}, "
                         f"got {value!r}")


def ordinal(number: int) -> str:
    """Returns ``number`` with its English ordinal suffix, e.g. ``"21st"``."""
    # Eleven, twelve and thirteen are irregular: 11th, not 11st.
    if 11 <= number % 100 <= 13:
        return f"{number}th"
    return f"{number}{ORDINAL_SUFFIXES.get(number % 10, 'th')}"


def format_date(date: datetime.date, format_name: str) -> str:
    """Renders ``date`` exactly as the template ``DATE_FORMATS[format_name]`` says.

    Raises:
        ValueError: If ``format_name`` is not a key of ``DATE_FORMATS``.
    """
    _check_choice("format_name", format_name, DATE_FORMATS)
    month_name = MONTH_NAMES[date.month - 1]
    weekday_name = WEEKDAY_NAMES[date.weekday()]
    return DATE_FORMATS[format_name].format(
        year=date.year, month=date.month, month_padded=f"{date.month:02d}",
        month_name=month_name, month_short=month_name[:3],
        day=date.day, day_padded=f"{date.day:02d}", ordinal=ordinal(date.day),
        weekday_name=weekday_name, weekday_short=weekday_name[:3])


def date_pair(rng: random.Random) -> tuple[str, str]:
    """Draws a pair such as ``("3rd of March 2021", "2021-03-03")`` from ``rng``."""
    date = datetime.date.fromordinal(
        rng.randint(FIRST_DATE.toordinal(), LAST_DATE.toordinal()))
    source = format_date(date, rng.choice(tuple(DATE_FORMATS)))
    styles, weights = zip(*CASE_STYLES)
    style = rng.choices(styles, weights=weights)[0]
    if style == "lower":
        source = source.lower()
    elif style == "upper":
        source = source.upper()
    return source, date.isoformat()


class Verb(NamedTuple):
    """An English verb, its Korean plain-style forms and allowed objects."""

    base: str
    third_person: str
    past: str
    korean_present: str
    korean_past: str
    korean_future: str
    categories: tuple[str, ...]


ALL_CATEGORIES = ("food", "drink", "text", "show", "thing")

# English subject -> (Korean noun, whether English uses third person singular).
SUBJECTS = {
    "I": ("나", False), "you": ("너", False), "he": ("그", True), "she": ("그녀", True),
    "we": ("우리", False), "they": ("그들", False), "the teacher": ("선생님", True),
    "my friend": ("내 친구", True), "the student": ("학생", True),
    "my mother": ("어머니", True), "the child": ("아이", True),
}

# English noun -> (Korean noun, category, countable).
OBJECTS = {
    "apple": ("사과", "food", True), "bread": ("빵", "food", False),
    "cake": ("케이크", "food", True), "rice": ("밥", "food", False),
    "sandwich": ("샌드위치", "food", True), "water": ("물", "drink", False),
    "milk": ("우유", "drink", False), "coffee": ("커피", "drink", False),
    "tea": ("차", "drink", False), "book": ("책", "text", True),
    "letter": ("편지", "text", True), "newspaper": ("신문", "text", True),
    "poem": ("시", "text", True), "movie": ("영화", "show", True),
    "picture": ("그림", "show", True), "bag": ("가방", "thing", True),
    "car": ("자동차", "thing", True), "phone": ("전화기", "thing", True),
    "hat": ("모자", "thing", True),
}

ADJECTIVES = {"big": "큰", "small": "작은", "red": "빨간", "new": "새",
              "old": "낡은", "good": "좋은"}

VERBS = {verb.base: verb for verb in (
    Verb("eat", "eats", "ate", "먹는다", "먹었다", "먹을 것이다", ("food",)),
    Verb("drink", "drinks", "drank", "마신다", "마셨다", "마실 것이다", ("drink",)),
    Verb("read", "reads", "read", "읽는다", "읽었다", "읽을 것이다", ("text",)),
    Verb("write", "writes", "wrote", "쓴다", "썼다", "쓸 것이다", ("text",)),
    Verb("watch", "watches", "watched", "본다", "봤다", "볼 것이다", ("show",)),
    Verb("buy", "buys", "bought", "산다", "샀다", "살 것이다",
         ("food", "drink", "text", "thing")),
    Verb("like", "likes", "liked", "좋아한다", "좋아했다", "좋아할 것이다",
         ALL_CATEGORIES),
    Verb("make", "makes", "made", "만든다", "만들었다", "만들 것이다",
         ("food", "show")),
    Verb("find", "finds", "found", "찾는다", "찾았다", "찾을 것이다",
         ("text", "thing")),
    Verb("sell", "sells", "sold", "판다", "팔았다", "팔 것이다", ("food", "thing")),
    Verb("want", "wants", "wanted", "원한다", "원했다", "원할 것이다",
         ALL_CATEGORIES),
)}

TENSES = ("present", "past", "future")

PLACES = {"at home": "집에서", "at school": "학교에서", "at the store": "가게에서",
          "in the park": "공원에서", "at the library": "도서관에서",
          "at the cafe": "카페에서"}

# English time word -> (Korean time word, tenses it can go with).
TIME_WORDS = {
    "yesterday": ("어제", ("past",)),
    "tomorrow": ("내일", ("future",)),
    "today": ("오늘", TENSES),
    "every day": ("매일", ("present",)),
}


def has_final_consonant(word: str) -> bool:
    """Tells whether the last syllable of ``word`` has a final consonant (batchim).

    Raises:
        ValueError: If ``word`` does not end in a precomposed Hangul syllable.
    """
    # Unicode lays out the 19 * 21 * 28 syllables from U+AC00 in blocks of 28
    # finals, the first of which is "no final consonant".
    code = ord(word[-1]) - 0xAC00 if word else -1
    if not 0 <= code < 19 * 21 * 28:
        raise ValueError(f"word must end in a Hangul syllable, got {word!r}")
    return code % 28 != 0


def with_topic_particle(noun: str) -> str:
    """Attaches the topic particle: 은 after a final consonant, 는 otherwise."""
    return noun + ("은" if has_final_consonant(noun) else "는")


def with_object_particle(noun: str) -> str:
    """Attaches the object particle: 을 after a final consonant, 를 otherwise."""
    return noun + ("을" if has_final_consonant(noun) else "를")


def objects_for(verb: str) -> list[str]:
    """Returns the English nouns whose category ``verb`` accepts as object."""
    return [name for name, (_, category, _) in OBJECTS.items()
            if category in VERBS[verb].categories]


def times_for(tense: str) -> list[str]:
    """Returns the English time words that agree with ``tense``."""
    return [name for name, (_, tenses) in TIME_WORDS.items() if tense in tenses]


def toy_ko_sentence(subject: str, verb: str, obj: str, tense: str,
                    adjective: str | None = None, place: str | None = None,
                    time: str | None = None) -> tuple[str, str]:
    """Builds one English sentence and its Korean translation.

    Args:
        subject: A key of ``SUBJECTS``, e.g. ``"my friend"``.
        verb: A key of ``VERBS`` given in its base form, e.g. ``"buy"``.
        obj: A key of ``OBJECTS`` that the verb allows, e.g. ``"book"``.
        tense: One of ``TENSES``.
        adjective: An optional key of ``ADJECTIVES``; countable objects only.
        place: An optional key of ``PLACES``.
        time: An optional key of ``TIME_WORDS`` that agrees with ``tense``.

    Returns:
        The pair, e.g. ``("My friend bought a new book at the store yesterday",
        "내 친구는 어제 가게에서 새 책을 샀다")``.

    Raises:
        ValueError: If a word is unknown or the words do not fit together.
    """
    _check_choice("subject", subject, SUBJECTS)
    _check_choice("verb", verb, VERBS)
    _check_choice("tense", tense, TENSES)
    _check_choice("obj", obj, objects_for(verb), f" for verb {verb!r}")
    korean_subject, third_person = SUBJECTS[subject]
    korean_object, _, countable = OBJECTS[obj]
    entry = VERBS[verb]
    if adjective is not None:
        if not countable:
            raise ValueError(f"adjective must be None for uncountable obj {obj!r}, "
                             f"got {adjective!r}")
        _check_choice("adjective", adjective, ADJECTIVES)
        korean_object = f"{ADJECTIVES[adjective]} {korean_object}"
    if place is not None:
        _check_choice("place", place, PLACES)
    if time is not None:
        _check_choice("time", time, times_for(tense), f" for tense {tense!r}")

    english_verb = {"present": entry.third_person if third_person else entry.base,
                    "past": entry.past, "future": f"will {entry.base}"}[tense]
    korean_verb = {"present": entry.korean_present, "past": entry.korean_past,
                   "future": entry.korean_future}[tense]
    object_phrase = obj if adjective is None else f"{adjective} {obj}"
    if countable:
        # The article depends on the sound of the next word: "an old book".
        article = "an" if object_phrase[0] in "aeiou" else "a"
        object_phrase = f"{article} {object_phrase}"

    english_words = [subject, english_verb, object_phrase, place, time]
    korean_words = [with_topic_particle(korean_subject),
                    TIME_WORDS[time][0] if time else None,
                    PLACES[place] if place else None,
                    with_object_particle(korean_object), korean_verb]
    english = " ".join(word for word in english_words if word)
    korean = " ".join(word for word in korean_words if word)
    return english[0].upper() + english[1:], korean


def toy_ko_pair(rng: random.Random) -> tuple[str, str]:
    """Draws a pair such as ``("I eat an apple", "나는 사과를 먹는다")`` from ``rng``."""
    subject = rng.choice(tuple(SUBJECTS))
    verb = rng.choice(tuple(VERBS))
    obj = rng.choice(objects_for(verb))
    tense = rng.choice(TENSES)
    countable = OBJECTS[obj][2]
    # Optional parts are drawn independently so that sentence length varies.
    adjective = None
    if countable and rng.random() < 0.3:
        adjective = rng.choice(tuple(ADJECTIVES))
    place = rng.choice(tuple(PLACES)) if rng.random() < 0.4 else None
    time = rng.choice(times_for(tense)) if rng.random() < 0.5 else None
    return toy_ko_sentence(subject, verb, obj, tense, adjective, place, time)


# The copy task's symbols and lengths: 26 letters carry log2(26) = 4.7 bits each, so a
# 30-letter source holds about 141 bits that a context vector must keep.
COPY_SYMBOLS = tuple("abcdefghijklmnopqrstuvwxyz")
COPY_MIN_LENGTH = 3
COPY_MAX_LENGTH = 30


def copy_pair(rng: random.Random, min_length: int = COPY_MIN_LENGTH,
              max_length: int = COPY_MAX_LENGTH) -> tuple[str, str]:
    """Draws a pair such as ``("q d k", "q d k")``: letters, space-separated, copied.

    The length is uniform in ``[min_length, max_length]``, so every length is equally
    represented when accuracy is measured against it.

    Raises:
        ValueError: If the lengths are not positive ints with ``min_length <= max_length``.
    """
    _check_positive_int("min_length", min_length)
    _check_positive_int("max_length", max_length)
    if min_length > max_length:
        raise ValueError(f"min_length must be <= max_length, got {min_length} > {max_length}")
    letters = rng.choices(COPY_SYMBOLS, k=rng.randint(min_length, max_length))
    text = " ".join(letters)
    return text, text


_PAIR_GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "dates": date_pair,
    "toy-ko": toy_ko_pair,
    "copy": copy_pair,
}


def _check_positive_int(name: str, value) -> None:
    """Raises ValueError naming the argument unless ``value`` is an int above 0."""
    # bool is a subclass of int, but True as a size is almost surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def generate_pairs(task: str, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Generates ``count`` pairs with distinct source strings.

    Args:
        task: One of ``TASK_NAMES``.
        count: Number of pairs to return.
        seed: Seed of the random generator; equal seeds give equal lists.

    Returns:
        A list of (source, target) pairs in generation order.

    Raises:
        ValueError: If ``task`` is unknown, ``count`` is not a positive int, or
            the task cannot yield ``count`` distinct sources.
    """
    _check_choice("task", task, TASK_NAMES)
    _check_positive_int("count", count)
    rng = random.Random(seed)
    make_pair = _PAIR_GENERATORS[task]
    pairs: dict[str, str] = {}
    # Attempts are capped so that an exhausted task fails instead of looping forever.
    max_attempts = 20 * count + 1000
    for _ in range(max_attempts):
        source, target = make_pair(rng)
        pairs.setdefault(source, target)
        if len(pairs) == count:
            return list(pairs.items())
    raise ValueError(f"task {task!r} yielded only {len(pairs)} distinct sources in "
                     f"{max_attempts} attempts, fewer than count={count}")


def load_task(task: str, train_size: int, test_size: int,
              seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Generates a training set and a held-out test set.

    Args:
        task: One of ``TASK_NAMES``.
        train_size: Number of training pairs.
        test_size: Number of test pairs.
        seed: Seed of the random generator.

    Returns:
        ``(train_pairs, test_pairs)``; no source string appears in both.

    Raises:
        ValueError: If an argument is invalid or the task is too small.
    """
    _check_choice("task", task, TASK_NAMES)
    _check_positive_int("train_size", train_size)
    _check_positive_int("test_size", test_size)
    # Splitting one list of distinct sources keeps the test sources unseen.
    pairs = generate_pairs(task, train_size + test_size, seed)
    return pairs[:train_size], pairs[train_size:]

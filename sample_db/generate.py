"""Deterministic generator of Atlas's sample database and its planted truth.

Every table is drawn with vectorised numpy from one ``Generator(PCG64(seed))`` in a
fixed order, so the same seed and scale give identical table contents. The planted
structure and effects are described in ``sample_db/README.md``; the truth goes to a
separate folder and never into the analyst database.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from sample_db import topics as T

WINDOW_START = np.datetime64("2026-07-03T00:00:00", "s")
N_DAYS = 90
DAY_S = 86_400
WINDOW_S = N_DAYS * DAY_S
BASE_COUNTS = MappingProxyType({"users": 20_000, "creators": 1_500, "videos": 25_000,
                                "watch_events": 1_000_000, "follows": 150_000,
                                "searches": 100_000})
USER_ID0 = 100_000
VIDEO_ID0 = 1_000_000
GROWTH = 4.0  # growing topic's event density rises by 1 + GROWTH * t over the window
RECENCY_S = 12 * DAY_S  # views decay with a video's age at this time constant
COMPLETE_AT = 0.95  # completed = watched at least this fraction of the video
SIGNIFICANT = ("device_os", "ios", "android", 1.12)  # planted ratio of mean per-user watch time
NULL = ("age_band", "25-34", "35-44")
N_BRIDGES = 12
HOUR_WEIGHTS = (3, 2, 1.5, 1, 1, 1, 1.5, 2.5, 3, 3, 3, 3.5, 4, 4, 4, 4, 4.5, 5, 6, 7, 7.5, 7, 6, 4.5)

SCHEMA = MappingProxyType({
    "users": "user_id BIGINT, signup_date DATE, country VARCHAR, language VARCHAR, "
             "age_band VARCHAR, device_os VARCHAR, is_creator BOOLEAN",
    "creators": "creator_id BIGINT, handle VARCHAR, tier VARCHAR, verified BOOLEAN, "
                "created_at DATE",
    "videos": "video_id BIGINT, creator_id BIGINT, posted_at TIMESTAMP, duration_s INTEGER, "
              "title VARCHAR, description VARCHAR, hashtags VARCHAR[], language VARCHAR, "
              "category VARCHAR",
    "watch_events": "user_id BIGINT, video_id BIGINT, ts TIMESTAMP, watch_s DOUBLE, "
                    "completed BOOLEAN, liked BOOLEAN, shared BOOLEAN, commented BOOLEAN",
    "follows": "follower_id BIGINT, creator_id BIGINT, followed_at TIMESTAMP",
    "searches": "user_id BIGINT, ts TIMESTAMP, query VARCHAR",
})


@dataclass(frozen=True)
class Users:
    """Users as arrays indexed by position (user_id = USER_ID0 + 1 + position)."""

    country: np.ndarray  # codes into list(T.COUNTRIES)
    language: np.ndarray  # str
    age: np.ndarray  # codes into T.AGE_BANDS
    device: np.ndarray  # codes into T.DEVICES
    start_day: np.ndarray  # signup day relative to the window start (negative: before)
    dominant: np.ndarray  # topic index
    mix: np.ndarray  # (n, K) watch-time share per topic


@dataclass(frozen=True)
class Creators:
    """Creators as arrays indexed by creator position."""

    user: np.ndarray  # user position
    topic: np.ndarray
    pgc: np.ndarray
    verified: np.ndarray
    created_day: np.ndarray
    popularity: np.ndarray
    handle: list[str]
    bridges: np.ndarray  # creator positions of the bridge creators


@dataclass(frozen=True)
class Videos:
    """The `videos` table plus the arrays the watch events are drawn from."""

    table: pa.Table
    topic: np.ndarray
    posted: np.ndarray  # seconds since the window start
    duration: np.ndarray
    weight: np.ndarray  # creator popularity x video appeal


def generate(out: Path, scale: float = 1.0, seed: int = 42, truth_dir: Path | None = None,
             progress: bool = True) -> dict[str, int]:
    """Write the sample DB to `out` (replacing it atomically: write to a temp file then
    rename), the truth to `truth_dir` (default ``out.parent / "truth"``); return row
    counts per table."""
    if scale < 0.01:
        raise ValueError("scale must be at least 0.01")
    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir is not None else out.parent / "truth"
    n = {k: round(v * scale) for k, v in BASE_COUNTS.items()}
    rng = np.random.Generator(np.random.PCG64(seed))
    with tqdm(total=7, desc="sample-db", unit="step", disable=not progress) as bar:
        def step(following: str) -> None:
            bar.update(1)
            bar.set_postfix_str(following)

        bar.set_postfix_str("users")
        users = _make_users(rng, n["users"])
        step("creators")
        creators = _make_creators(rng, users, n["creators"])
        step("videos")
        videos = _make_videos(rng, users, creators, n["videos"])
        step("watch_events")
        events = _make_events(rng, users, videos, n["watch_events"])
        step("follows")
        follows = _make_follows(rng, users, creators, n["follows"])
        step("searches")
        searches = _make_searches(rng, users, n["searches"])
        step("writing")
        tables = {"users": _users_table(users, creators), "creators": _creators_table(creators),
                  "videos": videos.table, "watch_events": events, "follows": follows,
                  "searches": searches}
        counts = _write_db(out, tables)
        _write_truth(truth_dir, users, creators, videos)
        step("done")
    return counts


# ---------------------------------------------------------------- helpers


def _counts_by_weight(weights: np.ndarray, total: int, minimum: int = 0) -> np.ndarray:
    """Split `total` into integers proportional to `weights` (largest remainder), each >= minimum."""
    rest = total - minimum * len(weights)
    raw = weights / weights.sum() * max(rest, 0)
    cnt = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - cnt), kind="stable")
    cnt[order[: max(rest, 0) - int(cnt.sum())]] += 1
    return cnt + minimum


def _choose_in_ranges(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray,
                      hi: np.ndarray) -> np.ndarray:
    """Per draw, an index in [lo, hi] chosen with weight given by the increments of `cum`."""
    base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    u = base + rng.random(len(lo)) * (cum[hi] - base)
    return np.clip(np.searchsorted(cum, u, side="right"), lo, hi)


def _ramp(u: np.ndarray, a: float) -> np.ndarray:
    """Inverse CDF on [0, 1) of the density proportional to 1 + a*t."""
    return u if a == 0 else (np.sqrt(1.0 + 2.0 * a * u * (1.0 + a / 2.0)) - 1.0) / a


def _day_weights(n_topics: int) -> np.ndarray:
    """(K + 1, N_DAYS) activity per day: one row per topic, the last row for no topic."""
    t = (np.arange(N_DAYS) + 0.5) / N_DAYS
    weekday = (4 + np.arange(N_DAYS)) % 7  # 2026-07-03 is a Friday (Monday = 0)
    base = (1.0 + 0.15 * t) * np.where(weekday >= 5, 1.15, 1.0)
    w = np.tile(base, (n_topics + 1, 1))
    w[T.topic_index(T.GROWING_TOPIC)] *= 1.0 + GROWTH * t
    return w


def _sample_seconds(rng: np.random.Generator, rows: np.ndarray, start_day: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """Seconds since the window start: day by row `rows` of `weights` from `start_day` on,
    hour of day by HOUR_WEIGHTS."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    flat = (cdf + np.arange(len(cdf))[:, None]).ravel()
    start = np.clip(start_day, 0, N_DAYS - 1)
    lo = np.where(start > 0, cdf[rows, np.maximum(start - 1, 0)], 0.0)
    u = lo + rng.random(len(rows)) * (1.0 - lo)
    day = np.clip(np.searchsorted(flat, rows + u, side="right") - rows * N_DAYS, start,
                  N_DAYS - 1)
    hcdf = np.cumsum(HOUR_WEIGHTS) / sum(HOUR_WEIGHTS)
    hour = np.minimum(np.searchsorted(hcdf, rng.random(len(rows)), side="right"), 23)
    return day * DAY_S + hour * 3600 + rng.integers(0, 3600, len(rows))


def _split_draws(rng: np.random.Generator, users: Users, n_per_user: np.ndarray,
                 p_dominant: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws per user: each from the dominant topic with p_dominant, else from a secondary
    topic by the user's mix. Returns (user position, topic, is_dominant) per draw."""
    n_users, k = users.mix.shape
    n_dom = rng.binomial(n_per_user, p_dominant)
    sec = users.mix.copy()
    sec[np.arange(n_users), users.dominant] = 0.0
    sec /= sec.sum(axis=1, keepdims=True)
    counts = rng.multinomial(n_per_user - n_dom, sec)
    counts[np.arange(n_users), users.dominant] += n_dom
    user = np.repeat(np.repeat(np.arange(n_users), k), counts.ravel())
    topic = np.repeat(np.tile(np.arange(k), n_users), counts.ravel())
    return user, topic, topic == users.dominant[user]


def _ts(seconds: np.ndarray) -> pa.Array:
    """Seconds since the window start as an Arrow timestamp array."""
    return pa.array((WINDOW_START + seconds.astype("timedelta64[s]")).astype("datetime64[us]"))


def _dates(days: np.ndarray) -> pa.Array:
    """Days since the window start as an Arrow date array."""
    return pa.array(WINDOW_START.astype("datetime64[D]") + days.astype("timedelta64[D]"))


def _pick(vocab: list[str] | tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """Strings of `vocab` at `codes`."""
    return pa.array(list(vocab), pa.string()).take(pa.array(codes))


# ---------------------------------------------------------------- users and creators


def _make_users(rng: np.random.Generator, n: int) -> Users:
    """Demographics, signup day and interest mixture of every user."""
    names = list(T.COUNTRIES)
    share = np.array([T.COUNTRIES[c][0] for c in names])
    country = rng.choice(len(names), n, p=share / share.sum())
    language = np.empty(n, dtype=object)
    device = np.empty(n, dtype=np.int64)
    for ci, code in enumerate(names):
        mask = country == ci
        langs = T.COUNTRIES[code][1]
        language[mask] = np.array([lang for lang, _ in langs])[
            rng.choice(len(langs), mask.sum(), p=[p for _, p in langs])]
        dev_p = T.DEVICE_SHARES_HIGH_IOS if T.COUNTRIES[code][2] else T.DEVICE_SHARES_LOW_IOS
        device[mask] = rng.choice(len(T.DEVICES), mask.sum(), p=dev_p)
    age = rng.choice(len(T.AGE_BANDS), n, p=T.AGE_SHARES)
    in_window = rng.random(n) < 0.10
    start_day = np.where(in_window, rng.integers(0, 80, n),
                         -1 - np.floor(1800 * rng.random(n) ** 1.6).astype(np.int64))
    pop = np.array([t.popularity for t in T.TOPICS])
    k = len(pop)
    affinity = np.ones((len(names), k))
    for code, topic, mult in T.COUNTRY_AFFINITY:
        affinity[names.index(code), T.topic_index(topic)] = mult
    p_dom = pop * affinity[country]
    cdf = np.cumsum(p_dom / p_dom.sum(axis=1, keepdims=True), axis=1)
    dominant = np.minimum((rng.random(n)[:, None] > cdf).sum(axis=1), k - 1)
    return Users(country, language, age, device, start_day, dominant,
                 _mixtures(rng, dominant, pop))


def _mixtures(rng: np.random.Generator, dominant: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """(n, K) watch-time shares: dominant 45-70%, the rest over 2-4 other topics."""
    n, k = len(dominant), len(pop)
    rows = np.arange(n)
    keys = np.log(pop) + rng.gumbel(size=(n, k))
    keys[rows, dominant] = -np.inf
    secondary = np.argsort(-keys, axis=1, kind="stable")[:, :4]
    n_sec = rng.integers(2, 5, n)
    w = rng.gamma(5.0, size=(n, 4)) * (np.arange(4) < n_sec[:, None])
    w /= w.sum(axis=1, keepdims=True)
    d = rng.uniform(0.45, 0.70, n)
    mix = np.zeros((n, k))
    mix[rows[:, None], secondary] = w * (1.0 - d)[:, None]
    mix[rows, dominant] = d
    return mix


def _make_creators(rng: np.random.Generator, users: Users, n: int) -> Creators:
    """Pick creator accounts among users who signed up before the window; one topic each."""
    pop = np.array([t.popularity for t in T.TOPICS])
    weight = pop * np.where(np.arange(len(pop)) == T.topic_index(T.UNDERSERVED_TOPIC), 0.5, 1.0)
    per_topic = _counts_by_weight(weight, n, minimum=1)
    eligible = users.start_day < 0
    taken = np.zeros(len(users.dominant), dtype=bool)
    chosen, topic = [], []
    for k, count in enumerate(per_topic):
        pool = np.flatnonzero(eligible & ~taken & (users.dominant == k))
        if len(pool) < count:  # tiny scales: convert other users to this topic
            extra = np.flatnonzero(eligible & ~taken & (users.dominant != k))
            pool = np.concatenate([pool, rng.choice(extra, count - len(pool), replace=False)])
            pool.sort()
        pick = np.sort(rng.choice(pool, count, replace=False))
        taken[pick] = True
        chosen.append(pick)
        topic.append(np.full(count, k))
    user, topic_arr = np.concatenate(chosen), np.concatenate(topic)
    _move_dominant(users, user, topic_arr)
    m = len(user)
    pgc = rng.random(m) < 0.10
    verified = rng.random(m) < np.where(pgc, 0.7, 0.04)
    start = users.start_day[user]
    created = start + np.floor(rng.random(m) * (-start)).astype(np.int64)
    popularity = rng.lognormal(0.0, 0.9, m) * np.where(pgc, 2.5, 1.0)
    bridges = _pick_bridges(rng, topic_arr, popularity)
    words = rng.random((m, 2))
    handle = []
    for i in range(m):
        hw = T.TOPICS[topic_arr[i]].handle_words
        name = T.HANDLE_NAMES[int(words[i, 1] * len(T.HANDLE_NAMES))]
        handle.append(f"{hw[int(words[i, 0] * len(hw))]}{'_' if i % 3 else '.'}{name}{user[i]}")
    return Creators(user, topic_arr, pgc, verified, created, popularity, handle, bridges)


def _move_dominant(users: Users, user: np.ndarray, topic: np.ndarray) -> None:
    """Make `topic` the dominant topic of `user` (swap the two topics' shares in the mix)."""
    old = users.dominant[user]
    a, b = users.mix[user, old].copy(), users.mix[user, topic].copy()
    users.mix[user, old], users.mix[user, topic] = b, a
    users.dominant[user] = topic


def _pick_bridges(rng: np.random.Generator, topic: np.ndarray, popularity: np.ndarray
                  ) -> np.ndarray:
    """Choose the bridge creators in the home topic and give them upper-middle popularity."""
    home = np.flatnonzero(topic == T.topic_index(T.BRIDGE_TOPICS[0]))
    count = min(N_BRIDGES, len(home) // 4) if len(home) >= 4 else min(1, len(home))
    bridges = np.sort(rng.choice(home, count, replace=False))
    popularity[bridges] = np.quantile(popularity[home], 0.7)
    return bridges


# ---------------------------------------------------------------- videos


def _make_videos(rng: np.random.Generator, users: Users, creators: Creators, n: int) -> Videos:
    """Videos of every creator: timing, length, noisy category, titles and hashtags."""
    k = len(T.TOPICS)
    demand = users.mix.mean(axis=0)
    demand[T.topic_index(T.UNDERSERVED_TOPIC)] *= 0.25
    n_creators = np.bincount(creators.topic, minlength=k)
    per_topic = np.maximum(_counts_by_weight(demand, n), n_creators)
    creator = []
    for t in range(k):
        members = np.flatnonzero(creators.topic == t)
        if len(members) == 0:
            continue
        act = rng.lognormal(0.0, 0.8, len(members)) * np.where(creators.pgc[members], 2.0, 1.0)
        cnt = 1 + rng.multinomial(per_topic[t] - len(members), act / act.sum())
        creator.append(np.repeat(members, cnt))
    creator = np.concatenate(creator)
    m = len(creator)
    topic = creators.topic[creator]
    a = np.where(topic == T.topic_index(T.GROWING_TOPIC), 1.5, 0.1)
    posted = np.empty(m, dtype=np.int64)
    for val in np.unique(a):
        mask = a == val
        posted[mask] = np.floor(_ramp(rng.random(mask.sum()), float(val)) * WINDOW_S)
    median = np.array([t.duration_s for t in T.TOPICS])[topic]
    duration = np.clip(np.round(rng.lognormal(np.log(median), 0.55)), 5, 600).astype(np.int64)
    category_true = np.array([T.CATEGORIES.index(t.category) for t in T.TOPICS])[topic]
    shift = rng.integers(1, len(T.CATEGORIES), m)
    category = np.where(rng.random(m) < 0.15, (category_true + shift) % len(T.CATEGORIES),
                        category_true)
    language = users.language[creators.user[creator]]
    titles, descriptions = _video_texts(rng, topic, language)
    table = pa.table({
        "video_id": pa.array(VIDEO_ID0 + 1 + np.arange(m)),
        "creator_id": pa.array(USER_ID0 + 1 + creators.user[creator]),
        "posted_at": _ts(posted),
        "duration_s": pa.array(duration.astype(np.int32)),
        "title": pa.array(titles, pa.string()),
        "description": pa.array(descriptions, pa.string()),
        "hashtags": _hashtags(rng, topic),
        "language": pa.array(language.tolist(), pa.string()),
        "category": _pick(T.CATEGORIES, category),
    })
    quality = rng.lognormal(0.0, 0.7, m)
    return Videos(table, topic, posted, duration, creators.popularity[creator] * quality)


def _video_texts(rng: np.random.Generator, topic: np.ndarray, language: np.ndarray
                 ) -> tuple[list[str], list[str]]:
    """Titles (10% off-topic, some localised) and descriptions for every video."""
    m, k = len(topic), len(T.TOPICS)
    off = rng.random(m) < 0.10
    generic = rng.random(m) < 0.3
    other = (topic + rng.integers(1, k, m)) % k
    local = rng.random(m) < 0.5
    r = rng.random((m, 6))
    nums = rng.integers(2, 31, m)
    titles, descriptions = [], []
    for i in range(m):
        src = T.TOPICS[other[i] if off[i] else topic[i]]
        kws = src.keywords
        kw, kw2 = kws[int(r[i, 0] * len(kws))], kws[int(r[i, 1] * len(kws))]
        if off[i] and generic[i]:
            title = T.GENERIC_TITLES[int(r[i, 2] * len(T.GENERIC_TITLES))]
        elif local[i] and language[i] in T.LOCAL_TITLES:
            tpl = T.LOCAL_TITLES[language[i]]
            title = tpl[int(r[i, 2] * len(tpl))].format(kw=kw)
        else:
            title = src.titles[int(r[i, 2] * len(src.titles))].format(kw=kw, kw2=kw2, n=nums[i])
        titles.append(title[0].upper() + title[1:])
        own = T.TOPICS[topic[i]].keywords
        desc = T.DESCRIPTIONS[int(r[i, 3] * len(T.DESCRIPTIONS))]
        text = desc.format(kw=own[int(r[i, 4] * len(own))], kw2=own[int(r[i, 5] * len(own))],
                           n=nums[i])
        descriptions.append(text[0].upper() + text[1:])
    return titles, descriptions


def _hashtags(rng: np.random.Generator, topic: np.ndarray) -> pa.Array:
    """3-6 distinct lowercase hashtags (without '#') per video; about 20% generic."""
    vocab = [h for t in T.TOPICS for h in t.hashtags] + list(T.GENERIC_HASHTAGS)
    sizes = np.array([len(t.hashtags) for t in T.TOPICS])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    per_video = rng.integers(3, 7, len(topic))
    video = np.repeat(np.arange(len(topic)), per_video)
    tt = topic[video]
    # topic tags with falling popularity (rank weight 1/sqrt(rank+1))
    u = rng.random(len(video))
    rank = np.floor(sizes[tt] * u ** 1.6).astype(np.int64)
    tag = offsets[tt] + np.minimum(rank, sizes[tt] - 1)
    is_generic = rng.random(len(video)) < 0.19
    tag = np.where(is_generic, offsets[-1] + rng.integers(0, len(T.GENERIC_HASHTAGS),
                                                          len(video)), tag)
    key = video * len(vocab) + tag
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)
    video, tag = video[keep], tag[keep]
    list_offsets = np.concatenate([[0], np.cumsum(np.bincount(video, minlength=len(topic)))])
    return pa.ListArray.from_arrays(pa.array(list_offsets.astype(np.int32)), _pick(vocab, tag))


# ---------------------------------------------------------------- watch events


def _make_events(rng: np.random.Generator, users: Users, videos: Videos, n: int) -> pa.Table:
    """Watch events: topic from the user's mix, time by topic trend, video by popularity and
    recency among those already posted; then the planted group differences."""
    n_users, k = users.mix.shape
    activity = (rng.lognormal(0.0, 0.5, n_users) * np.array(T.AGE_ACTIVITY)[users.age]
                * np.array(T.DEVICE_ACTIVITY)[users.device])
    n_per_user = np.maximum(8, np.round(activity * n / activity.sum())).astype(np.int64)
    mean_watch = np.array([_expected_watch(videos.duration[videos.topic == t])
                           for t in range(k)])
    p = users.mix / mean_watch
    p /= p.sum(axis=1, keepdims=True)
    counts = rng.multinomial(n_per_user, p)
    user = np.repeat(np.repeat(np.arange(n_users), k), counts.ravel())
    topic = np.repeat(np.tile(np.arange(k), n_users), counts.ravel())
    ts = _sample_seconds(rng, topic, users.start_day[user], _day_weights(k))
    video, ts = _choose_videos(rng, videos, topic, ts)
    duration = videos.duration[video].astype(np.float64)
    dominant = topic == users.dominant[user]
    p_complete = np.clip(1.05 - 0.2 * np.log(duration), 0.08, 0.75) + 0.08 * dominant
    completed = rng.random(len(user)) < p_complete
    full = np.where(rng.random(len(user)) < 0.7, 1.0, rng.uniform(COMPLETE_AT + 0.005, 1.0,
                                                                  len(user)))
    frac = np.where(completed, full, rng.beta(1.3, 2.2, len(user)) * COMPLETE_AT * 0.98)
    watch = frac * duration
    _calibrate(users, user, watch, completed)
    watch = np.minimum(np.floor(watch * 100.0) / 100.0, duration)
    liked = rng.random(len(user)) < 0.03 + 0.12 * completed + 0.03 * dominant
    shared = rng.random(len(user)) < 0.004 + 0.015 * completed
    commented = rng.random(len(user)) < 0.003 + 0.01 * completed
    order = np.lexsort((video, user, ts))
    return pa.table({
        "user_id": pa.array(USER_ID0 + 1 + user[order]),
        "video_id": pa.array(VIDEO_ID0 + 1 + video[order]),
        "ts": _ts(ts[order]),
        "watch_s": pa.array(watch[order]),
        "completed": pa.array(completed[order]),
        "liked": pa.array(liked[order]),
        "shared": pa.array(shared[order]),
        "commented": pa.array(commented[order]),
    })


def _expected_watch(duration: np.ndarray) -> float:
    """Rough mean seconds watched per view of videos with these lengths."""
    if len(duration) == 0:
        return 1.0
    pc = np.clip(1.05 - 0.2 * np.log(duration), 0.08, 0.75)
    return float(np.mean(duration * (pc * 0.99 + (1 - pc) * COMPLETE_AT * 0.98 * 1.3 / 3.5)))


def _choose_videos(rng: np.random.Generator, videos: Videos, topic: np.ndarray, ts: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per event, a video of its topic posted at or before ts (weight: popularity x recency).
    Events earlier than a topic's first video move just after it."""
    k = len(T.TOPICS)
    big = np.int64(WINDOW_S * 2)
    key = videos.topic * big + videos.posted
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    weight = videos.weight[order] * np.exp(videos.posted[order] / RECENCY_S)
    cum = np.cumsum(weight)
    lo = np.searchsorted(key_sorted, np.arange(k) * big)[topic]
    hi = np.searchsorted(key_sorted, topic * big + ts, side="right") - 1
    early = hi < lo
    if early.any():
        first = videos.posted[order][np.minimum(lo[early], len(order) - 1)]
        ts = ts.copy()
        ts[early] = np.minimum(first + rng.integers(0, 3600, early.sum()), WINDOW_S - 1)
        hi[early] = np.searchsorted(key_sorted, topic[early] * big + ts[early], side="right") - 1
    return order[_choose_in_ranges(rng, cum, lo, hi)], ts


def _calibrate(users: Users, user: np.ndarray, watch: np.ndarray, completed: np.ndarray) -> None:
    """Plant the exact group differences in mean per-user watch time by scaling down the
    partly-watched events of one group (keeps watch_s <= duration and `completed` valid)."""
    dims = {"device_os": (users.device, T.DEVICES), "age_band": (users.age, T.AGE_BANDS)}
    sig_dim, sig_a, sig_b, ratio = SIGNIFICANT
    null_dim, null_a, null_b = NULL
    plans = [(dims[sig_dim], sig_a, sig_b, ratio), (dims[null_dim], null_a, null_b, 1.0)]
    for _ in range(4):
        for (codes, labels), a, b, target in plans:
            _scale_pair(codes[user], labels.index(a), labels.index(b), target,
                        np.bincount(codes, minlength=len(labels)), watch, completed)


def _scale_pair(group: np.ndarray, a: int, b: int, target: float, n_users: np.ndarray,
                watch: np.ndarray, completed: np.ndarray) -> None:
    """Scale partial views of group a or b so that mean(a) / mean(b) == target."""
    total = np.bincount(group, weights=watch, minlength=len(n_users))
    mean_a, mean_b = total[a] / n_users[a], total[b] / n_users[b]
    if mean_a > target * mean_b:
        g, goal = a, target * mean_b * n_users[a]
    else:
        g, goal = b, mean_a / target * n_users[b]
    part = (group == g) & ~completed
    partial = watch[part].sum()
    factor = (goal - (total[g] - partial)) / partial
    watch[part] *= factor


# ---------------------------------------------------------------- follows and searches


def _make_follows(rng: np.random.Generator, users: Users, creators: Creators, n: int
                  ) -> pa.Table:
    """Follows: 72% of draws to creators of the follower's dominant topic (about 70% after
    de-duplication), the rest to secondary topics; bridge creators are also followed by fans
    of the second bridged topic. Over-sampled, de-duplicated, then trimmed to `n`; small
    scales, whose topics have few creators, top up from secondary topics."""
    n_users, k = users.mix.shape
    appetite = rng.gamma(2.0, 0.5, n_users)
    pools = _follow_pools(users, creators, appetite)
    pair = np.empty(0, dtype=np.int64)
    for attempt in range(6):
        need = n - len(pair)
        if need <= 0:
            break
        lam = need / n_users * 1.15 * appetite
        new = _draw_follows(rng, users, creators, pools, rng.poisson(lam), 0.72 / 2**attempt)
        both = np.concatenate([pair, new])
        _, first = np.unique(both, return_index=True)
        pair = both[np.sort(first)]
    if len(pair) > n:  # drop the surplus of the over-sampled draws at random
        pair = pair[np.sort(rng.choice(len(pair), n, replace=False))]
    user, creator_user = np.divmod(pair, np.int64(n_users))
    ts = _sample_seconds(rng, np.full(len(pair), k), users.start_day[user], _day_weights(k))
    order = np.lexsort((creator_user, user, ts))
    return pa.table({"follower_id": pa.array(USER_ID0 + 1 + user[order]),
                     "creator_id": pa.array(USER_ID0 + 1 + creator_user[order]),
                     "followed_at": _ts(ts[order])})


def _follow_pools(users: Users, creators: Creators, appetite: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Creator pools per group g = kind * K + topic (kind 0: dominant-topic draws, 1: other
    draws) as (members, cumulative weight, start, size); bridges are in topic t2's
    dominant pool and in no secondary pool."""
    k = users.mix.shape[1]
    t1, t2 = (T.topic_index(t) for t in T.BRIDGE_TOPICS)
    is_bridge = np.zeros(len(creators.topic), dtype=bool)
    is_bridge[creators.bridges] = True
    members, weights, sizes = [], [], []
    for kind in (0, 1):
        for t in range(k):
            own = np.flatnonzero((creators.topic == t) & ~(is_bridge & (kind == 1)))
            w = creators.popularity[own]
            if kind == 0 and t == t2 and len(creators.bridges):
                fans = appetite[users.dominant == t1].sum() / appetite[users.dominant == t2].sum()
                own = np.concatenate([own, creators.bridges])
                w = np.concatenate([w, np.full(len(creators.bridges),
                                               _bridge_weight(creators, fans, t1, t2))])
            members.append(own)
            weights.append(w)
            sizes.append(len(own))
    size = np.array(sizes)
    return np.concatenate(members), np.cumsum(np.concatenate(weights)), np.cumsum(size) - size, size


def _draw_follows(rng: np.random.Generator, users: Users, creators: Creators,
                  pools: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  n_per_user: np.ndarray, p_dominant: float) -> np.ndarray:
    """Follow draws as keys follower_pos * n_users + creator_user_pos, without self-follows."""
    members, cum, start, size = pools
    n_users, k = users.mix.shape
    user, topic, dom = _split_draws(rng, users, n_per_user, p_dominant)
    group = np.where(dom, 0, 1) * k + topic
    ok = size[group] > 0
    user, group = user[ok], group[ok]
    creator = members[_choose_in_ranges(rng, cum, start[group], start[group] + size[group] - 1)]
    creator_user = creators.user[creator]
    ok = creator_user != user
    return user[ok] * np.int64(n_users) + creator_user[ok]


def _bridge_weight(creators: Creators, fans_ratio: float, t1: int, t2: int) -> float:
    """Pool weight of a bridge creator among topic t2's creators so that it expects as many
    followers from t2 fans as from its home topic t1 (fans_ratio: t1 / t2 follow draws)."""
    w1 = creators.popularity[creators.topic == t1].sum()
    w2 = creators.popularity[creators.topic == t2].sum()
    share = creators.popularity[creators.bridges[0]] / w1 * fans_ratio  # per t2 draw
    room = 1.0 - len(creators.bridges) * share
    return float(share * w2 / room) if room > 0 else float(creators.popularity[creators.bridges[0]])


def _make_searches(rng: np.random.Generator, users: Users, n: int) -> pa.Table:
    """Search queries: 60% about the dominant topic, 30% secondary, 10% generic; some in the
    user's language."""
    n_users, k = users.mix.shape
    lam = n / n_users * rng.gamma(3.0, 1.0 / 3.0, n_users)
    user, topic, _ = _split_draws(rng, users, rng.poisson(lam), 0.6 / 0.9)
    generic = rng.random(len(user)) < 0.10
    pool, starts, sizes, lang_slot = _query_pool()
    slot = np.array([lang_slot.get(lang, 0) for lang in users.language])[user]
    slot = np.where(rng.random(len(user)) < 0.35, slot, 0)
    n_slots = len(T.LOCAL_QUERIES) + 1
    group = np.where(generic, k * n_slots, topic * n_slots + slot)
    idx = starts[group] + np.floor(rng.random(len(user)) * sizes[group]).astype(np.int64)
    ts = _sample_seconds(rng, np.where(generic, k, topic), users.start_day[user],
                         _day_weights(k))
    order = np.lexsort((idx, user, ts))
    return pa.table({"user_id": pa.array(USER_ID0 + 1 + user[order]), "ts": _ts(ts[order]),
                     "query": _pick(pool, idx[order])})


def _query_pool() -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """All search strings, grouped by (topic, language slot) and a final generic group."""
    langs = list(T.LOCAL_QUERIES)
    pool, sizes = [], []
    for topic in T.TOPICS:
        for slot in range(len(langs) + 1):
            tpls = T.QUERY_TEMPLATES if slot == 0 else T.LOCAL_QUERIES[langs[slot - 1]]
            group = [tpl.format(kw=kw) for tpl in tpls for kw in topic.keywords]
            if slot == 0:
                group += list(topic.hashtags)
            pool += group
            sizes.append(len(group))
    pool += list(T.GENERIC_QUERIES)
    sizes.append(len(T.GENERIC_QUERIES))
    size_arr = np.array(sizes)
    return pool, np.cumsum(size_arr) - size_arr, size_arr, {
        lang: i + 1 for i, lang in enumerate(langs)}


# ---------------------------------------------------------------- output


def _users_table(users: Users, creators: Creators) -> pa.Table:
    """The `users` table."""
    n = len(users.dominant)
    is_creator = np.zeros(n, dtype=bool)
    is_creator[creators.user] = True
    return pa.table({
        "user_id": pa.array(USER_ID0 + 1 + np.arange(n)),
        "signup_date": _dates(users.start_day),
        "country": _pick(list(T.COUNTRIES), users.country),
        "language": pa.array(users.language.tolist(), pa.string()),
        "age_band": _pick(T.AGE_BANDS, users.age),
        "device_os": _pick(T.DEVICES, users.device),
        "is_creator": pa.array(is_creator),
    })


def _creators_table(creators: Creators) -> pa.Table:
    """The `creators` table."""
    return pa.table({
        "creator_id": pa.array(USER_ID0 + 1 + creators.user),
        "handle": pa.array(creators.handle, pa.string()),
        "tier": _pick(("ugc", "pgc"), creators.pgc.astype(np.int64)),
        "verified": pa.array(creators.verified),
        "created_at": _dates(creators.created_day),
    })


def _write_db(out: Path, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Write all tables to a temporary DuckDB file, then move it over `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    for path in (tmp, Path(str(tmp) + ".wal")):
        path.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET enable_progress_bar = false")
        for name, ddl in SCHEMA.items():
            con.execute(f"CREATE TABLE {name} ({ddl})")
            con.register("_src", tables[name])
            con.execute(f"INSERT INTO {name} SELECT * FROM _src")
            con.unregister("_src")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    Path(str(out) + ".wal").unlink(missing_ok=True)
    os.replace(tmp, out)
    return {name: tables[name].num_rows for name in SCHEMA}


def _write_truth(truth_dir: Path, users: Users, creators: Creators, videos: Videos) -> None:
    """Write the planted truth (topics, per-entity topics, effects) and swap it into place."""
    names = T.topic_names()
    tmp = truth_dir.with_name(truth_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    topics = [{"topic": t.name, "category": t.category, "keywords": list(t.keywords)}
              for t in T.TOPICS]
    (tmp / "topics.json").write_text(json.dumps(topics, indent=2, ensure_ascii=False) + "\n")
    for file, ids, topic in (
        ("users.parquet", USER_ID0 + 1 + np.arange(len(users.dominant)), users.dominant),
        ("creators.parquet", USER_ID0 + 1 + creators.user, creators.topic),
        ("videos.parquet", VIDEO_ID0 + 1 + np.arange(len(videos.topic)), videos.topic),
    ):
        key = file.split(".")[0].rstrip("s") + "_id"
        pq.write_table(pa.table({key: pa.array(ids), "topic": _pick(names, topic)}), tmp / file)
    effects = {
        "growing_topic": T.GROWING_TOPIC,
        "underserved_topic": T.UNDERSERVED_TOPIC,
        "significant_difference": {"metric": "watch_time", "dimension": SIGNIFICANT[0],
                                   "a": SIGNIFICANT[1], "b": SIGNIFICANT[2]},
        "null_difference": {"metric": "watch_time", "dimension": NULL[0], "a": NULL[1],
                            "b": NULL[2]},
        "bridge_creator_ids": [int(USER_ID0 + 1 + creators.user[c]) for c in creators.bridges],
        "bridged_topics": list(T.BRIDGE_TOPICS),
    }
    (tmp / "effects.json").write_text(json.dumps(effects, indent=2) + "\n")
    shutil.rmtree(truth_dir, ignore_errors=True)
    os.replace(tmp, truth_dir)

"""Vocabularies of the sample database: interest topics, countries, text templates.

Everything here is immutable data (tuples and frozen dataclasses) that
:mod:`sample_db.generate` draws from; nothing here is random.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Topic:
    """One fine interest topic: its coarse category and its text vocabulary."""

    name: str
    category: str
    popularity: float  # relative share of users whose dominant interest this is
    duration_s: int  # median video length in seconds
    keywords: tuple[str, ...]
    hashtags: tuple[str, ...]
    titles: tuple[str, ...]  # English templates with {kw}, {kw2}, {n}
    handle_words: tuple[str, ...]


CATEGORIES: tuple[str, ...] = (
    "Sports",
    "Music & Dance",
    "Food",
    "Beauty & Fashion",
    "Education",
    "Gaming",
    "Lifestyle",
    "Travel",
    "Comedy",
    "Autos",
)

TOPICS: tuple[Topic, ...] = (
    Topic(
        "home_workouts", "Sports", 1.1, 45,
        ("workout", "hiit", "abs", "squats", "pushups", "cardio", "fat burn", "resistance bands",
         "pilates", "core", "stretching", "dumbbells", "full body", "no equipment", "glutes"),
        ("homeworkout", "hiit", "fitness", "abs", "workoutathome", "fitfam", "cardio", "pilates",
         "gymtok", "noequipment", "fitnessmotivation"),
        ("{n} minute {kw} you can do at home", "Full {kw} routine, no gym needed",
         "Try this {kw} challenge", "My daily {kw} for beginners",
         "{kw} + {kw2} combo that actually works", "Day {n} of my {kw} journey",
         "Stop doing {kw} like this"),
        ("fit", "sweat", "gains", "flex", "coach"),
    ),
    Topic(
        "football_highlights", "Sports", 1.3, 35,
        ("goal", "free kick", "bicycle kick", "champions league", "premier league", "penalty",
         "dribble", "assist", "skills", "derby", "transfer", "hat trick", "world cup",
         "el clasico", "last minute winner"),
        ("football", "soccer", "goals", "futbol", "premierleague", "ucl", "footballskills",
         "futebol", "matchday", "golazo", "footballtiktok"),
        ("Best {kw} of the week", "This {kw} is unreal", "Top {n} {kw} moments",
         "{kw} highlights: {kw2}", "Can you believe this {kw}?", "Every {kw} from the weekend",
         "The {kw} nobody talks about"),
        ("goal", "golazo", "pitch", "ultras", "footy"),
    ),
    Topic(
        "kpop_dance_covers", "Music & Dance", 1.2, 40,
        ("kpop", "dance cover", "choreography", "idol", "comeback", "bts", "blackpink",
         "stray kids", "twice", "newjeans", "mirrored", "dance practice", "random play dance",
         "fancam", "killing part"),
        ("kpop", "kpopdance", "dancecover", "kpopcover", "choreography", "bts", "blackpink",
         "straykids", "kpopchallenge", "kpopidol", "randomplaydance"),
        ("{kw} {kw2} in {n} hours", "My {kw} of the new comeback", "{kw} challenge with friends",
         "Learning the {kw} part by part", "{kw} vs {kw2}: which one?", "Mirrored {kw} tutorial",
         "{kw} at the busiest street"),
        ("kpop", "idol", "dancer", "stan", "bias"),
    ),
    Topic(
        "budget_cooking", "Food", 1.2, 55,
        ("budget meals", "meal prep", "one pot", "pasta", "rice bowl", "cheap eats", "recipe",
         "air fryer", "leftovers", "grocery haul", "dinner", "lentils", "sheet pan",
         "5 ingredients", "frugal"),
        ("budgetcooking", "mealprep", "easyrecipe", "cheapmeals", "recipe", "cooking",
         "airfryer", "onepotmeal", "dinnerideas", "budgetmeals", "homecooking"),
        ("{kw} for under ${n}", "Easy {kw} in {n} minutes", "{kw} for the whole week",
         "My go-to {kw} when I'm broke", "{kw} with {kw2}, so good", "Feeding {n} people with {kw}",
         "The only {kw} recipe you need"),
        ("chef", "kitchen", "pantry", "cook", "meals"),
    ),
    Topic(
        "street_food", "Food", 1.0, 50,
        ("street food", "night market", "tacos", "ramen", "dumplings", "skewers", "food stall",
         "spicy", "bangkok", "mumbai", "seoul", "hawker", "noodles", "taste test", "vendor"),
        ("streetfood", "foodie", "nightmarket", "tacos", "ramen", "streetfoodie", "foodtour",
         "asianfood", "spicyfood", "eatwithme", "localfood"),
        ("Trying {kw} in {kw2}", "${n} {kw} tour", "The best {kw} I've ever had",
         "{kw} at {n}am", "Is this the most famous {kw}?", "Rating every {kw} stall",
         "{kw} legend making {kw2}"),
        ("eats", "foodie", "bites", "hungry", "stall"),
    ),
    Topic(
        "sneakers", "Beauty & Fashion", 0.8, 40,
        ("sneakers", "jordan", "air max", "unboxing", "resell", "on feet", "restock", "dunk",
         "new balance", "sneaker drop", "sneakerhead", "legit check", "collection", "cleaning",
         "retro"),
        ("sneakers", "sneakerhead", "kicks", "jordan", "nike", "sneakertok", "dunks",
         "newbalance", "streetwear", "sneakerdrop", "kickstagram"),
        ("{kw} {kw2} review", "Is the {kw} worth it?", "My {kw} collection ({n} pairs)",
         "{kw} on feet", "Copped the {kw} for ${n}", "{kw} fake vs real", "Best {kw} of the year"),
        ("kicks", "sole", "heat", "laces", "drip"),
    ),
    Topic(
        "skincare", "Beauty & Fashion", 1.0, 50,
        ("skincare", "routine", "serum", "retinol", "sunscreen", "acne", "moisturizer",
         "glass skin", "cleanser", "niacinamide", "spf", "dermatologist", "pores", "hydration",
         "k-beauty"),
        ("skincare", "skincareroutine", "glowup", "acne", "spf", "skintok", "kbeauty",
         "clearskin", "retinol", "dermtok", "glassskin"),
        ("My {n} step {kw} routine", "{kw} mistakes you're making", "{kw} vs {kw2}",
         "How I cleared my {kw}", "Dermatologist reacts to {kw}", "{kw} for oily skin",
         "{kw} that changed my skin"),
        ("glow", "skin", "derm", "dewy", "serum"),
    ),
    Topic(
        "makeup_tutorials", "Beauty & Fashion", 1.0, 55,
        ("makeup", "eyeliner", "foundation", "contour", "lipstick", "eyeshadow", "blush",
         "concealer", "glam", "no makeup look", "brows", "tutorial", "highlighter",
         "setting spray", "dupe"),
        ("makeup", "makeuptutorial", "mua", "grwm", "beauty", "eyeliner", "glam", "makeuptok",
         "makeupdupes", "lipstick", "makeuplook"),
        ("{kw} tutorial for beginners", "GRWM: {kw} and {kw2}", "{kw} in {n} seconds",
         "Drugstore {kw} dupe", "Soft {kw} look", "Testing viral {kw}", "Fixing my {kw}"),
        ("glam", "mua", "beauty", "blush", "lash"),
    ),
    Topic(
        "booktok", "Education", 0.8, 45,
        ("books", "book review", "fantasy", "romance", "thriller", "reading", "tbr", "book haul",
         "annotating", "enemies to lovers", "series", "author", "library", "reading slump",
         "bookshelf"),
        ("booktok", "books", "reading", "bookreview", "booktube", "bookish", "romancebooks",
         "fantasybooks", "tbr", "bookworm", "bookrecs"),
        ("{n} {kw} you need to read", "My {kw} this month", "{kw} that made me cry",
         "{kw} recommendations if you like {kw2}", "Rating my {kw}", "{kw} with a twist",
         "Reading {n} {kw} in a week"),
        ("reads", "pages", "chapter", "novel", "shelf"),
    ),
    Topic(
        "language_learning", "Education", 0.7, 45,
        ("spanish", "japanese", "korean", "vocabulary", "grammar", "pronunciation", "fluent",
         "phrases", "flashcards", "immersion", "accent", "polyglot", "study", "native speaker",
         "conjugation"),
        ("languagelearning", "learnenglish", "learnspanish", "polyglot", "studytok",
         "learnkorean", "vocabulary", "learnjapanese", "languagetips", "esl", "speakfluently"),
        ("{n} {kw} tips to sound fluent", "How I learned {kw} in {n} months",
         "{kw} mistakes natives notice", "{kw} vs {kw2}", "Daily {kw} practice",
         "Learn {kw} with me", "Stop saying this in {kw}"),
        ("lingo", "fluent", "words", "talk", "polyglot"),
    ),
    Topic(
        "personal_finance", "Education", 0.9, 50,
        ("budgeting", "investing", "index funds", "savings", "credit score", "side hustle",
         "stocks", "etf", "debt payoff", "emergency fund", "compound interest", "passive income",
         "retirement", "frugal living", "salary"),
        ("personalfinance", "moneytok", "investing", "budgeting", "financetok", "stocks",
         "sidehustle", "savemoney", "financialfreedom", "debtfree", "moneytips"),
        ("How I saved ${n} with {kw}", "{kw} explained in {n} seconds", "{kw} vs {kw2}",
         "{kw} mistakes in your 20s", "My {kw} system", "Why {kw} beats {kw2}",
         "{kw} for beginners"),
        ("money", "wealth", "cents", "budget", "invest"),
    ),
    Topic(
        "indie_games", "Gaming", 0.7, 50,
        ("indie game", "pixel art", "steam", "roguelike", "game dev", "devlog", "metroidvania",
         "cozy game", "speedrun", "boss fight", "early access", "stardew", "hollow knight",
         "gameplay", "wishlist"),
        ("indiegame", "gamedev", "indiedev", "gaming", "pixelart", "steam", "cozygames",
         "roguelike", "devlog", "gamertok", "indiegames"),
        ("{kw} you missed this year", "{kw} devlog #{n}", "This {kw} is a hidden gem",
         "{kw} vs {kw2}", "I made a {kw} in {n} days", "{kw} first impressions",
         "Top {n} {kw} on sale"),
        ("pixel", "gamer", "dev", "quest", "player"),
    ),
    Topic(
        "pets", "Lifestyle", 1.3, 30,
        ("puppy", "kitten", "dog training", "cat", "golden retriever", "rescue dog", "zoomies",
         "vet", "treats", "tricks", "adoption", "hamster", "parrot", "grooming", "funny cat"),
        ("pets", "dogsoftiktok", "catsoftiktok", "puppy", "dogtraining", "rescuedog", "cats",
         "petlover", "kitten", "dogs", "catlover"),
        ("My {kw} learned a new trick", "{kw} reacts to {kw2}", "Day {n} with our {kw}",
         "{kw} being dramatic", "When your {kw} sees {kw2}", "{kw} tips from a vet",
         "Rescue {kw} transformation"),
        ("paws", "woof", "meow", "furry", "pup"),
    ),
    Topic(
        "diy_crafts", "Lifestyle", 0.8, 60,
        ("diy", "crochet", "resin", "upcycle", "embroidery", "candle making", "clay", "knitting",
         "scrapbook", "thrift flip", "sewing", "macrame", "painting", "handmade", "glue gun"),
        ("diy", "crafts", "crochet", "handmade", "diyproject", "resinart", "upcycling",
         "knitting", "crafttok", "sewing", "thriftflip"),
        ("{kw} in {n} easy steps", "Turning trash into {kw}", "{kw} for beginners",
         "My first {kw} project", "{kw} and {kw2} gift ideas", "Satisfying {kw}",
         "{kw} hack you need"),
        ("craft", "maker", "stitch", "hands", "studio"),
    ),
    Topic(
        "gardening", "Lifestyle", 0.6, 55,
        ("garden", "tomatoes", "seedlings", "compost", "houseplants", "raised bed", "pruning",
         "harvest", "monstera", "succulents", "propagation", "soil", "balcony garden", "herbs",
         "watering"),
        ("gardening", "plantsoftiktok", "garden", "houseplants", "growyourown", "plants",
         "gardentok", "urbangarden", "compost", "planttok", "plantcare"),
        ("{kw} update: day {n}", "How to grow {kw}", "{kw} mistakes killing your plants",
         "{kw} from {kw2}", "My {kw} harvest", "{kw} on a tiny balcony", "{n} {kw} tips"),
        ("green", "leaf", "bloom", "sprout", "garden"),
    ),
    Topic(
        "travel_vlogs", "Travel", 1.0, 70,
        ("travel", "itinerary", "hidden gems", "backpacking", "hostel", "beach", "flight",
         "bali", "tokyo", "lisbon", "road trip", "budget travel", "solo travel", "airport",
         "hotel tour"),
        ("travel", "traveltok", "wanderlust", "travelvlog", "backpacking", "solotravel",
         "bucketlist", "travelguide", "vacation", "traveltips", "explore"),
        ("{n} days in {kw}", "{kw} hidden gems", "{kw} on ${n} a day", "Don't do this in {kw}",
         "{kw} vlog: {kw2}", "First time in {kw}", "{kw} itinerary"),
        ("wander", "roam", "nomad", "trip", "globe"),
    ),
    Topic(
        "stand_up_comedy", "Comedy", 1.2, 60,
        ("stand up", "comedian", "crowd work", "punchline", "roast", "open mic",
         "comedy special", "heckler", "bit", "late night", "joke", "sketch", "improv",
         "comedy tour", "set"),
        ("standup", "comedy", "standupcomedy", "crowdwork", "comedian", "jokes", "openmic",
         "roast", "comedyclub", "standupclips", "comedyshow"),
        ("{kw} gone wrong", "Best {kw} of the night", "{kw} about {kw2}",
         "This {kw} killed", "{kw} with a heckler", "{n} years of {kw}", "{kw} at the club"),
        ("laughs", "jokes", "bits", "comic", "punch"),
    ),
    Topic(
        "car_reviews", "Autos", 0.7, 65,
        ("car review", "ev", "tesla", "horsepower", "test drive", "supercar", "0-60",
         "interior", "sedan", "suv", "mpg", "hybrid", "porsche", "bmw", "track day"),
        ("cars", "carreview", "carsoftiktok", "ev", "supercars", "carcommunity", "tesla",
         "cartok", "testdrive", "jdm", "carguy"),
        ("{kw} {kw2} full review", "Is the {kw} worth ${n}k?", "{kw} vs {kw2}",
         "{kw} after {n} miles", "{kw} problems nobody mentions", "First drive: {kw}",
         "{kw} interior tour"),
        ("motor", "drive", "gear", "turbo", "wheels"),
    ),
)

GROWING_TOPIC = "indie_games"
UNDERSERVED_TOPIC = "budget_cooking"
BRIDGE_TOPICS = ("football_highlights", "sneakers")  # (home topic, second topic)

GENERIC_HASHTAGS: tuple[str, ...] = (
    "fyp", "foryou", "foryoupage", "viral", "trending", "explorepage", "viralvideo", "blowthisup",
)
GENERIC_TITLES: tuple[str, ...] = (
    "wait for it", "POV: you finally tried it", "day in my life", "you won't believe this",
    "storytime", "part 2 because you asked", "rate this 1-10", "this changed everything",
    "why did nobody tell me this", "watch till the end",
)
GENERIC_QUERIES: tuple[str, ...] = (
    "funny videos", "trending sounds", "new music", "viral", "live", "asmr", "memes", "news",
)
DESCRIPTIONS: tuple[str, ...] = (
    "All about {kw} and {kw2}. Follow for more {kw}!",
    "{kw} tips I wish I knew sooner. Save this for later.",
    "Part {n} of my {kw} series. What should I try next?",
    "Trying {kw} so you don't have to. Comment your favourite {kw2}.",
    "Quick {kw} video, let me know if you want a longer one about {kw2}.",
)
QUERY_TEMPLATES: tuple[str, ...] = (
    "{kw}", "{kw}", "best {kw}", "{kw} for beginners", "how to {kw}", "{kw} tips", "{kw} 2026",
)

# Localised title and search templates (keywords stay in English, as they often do).
LOCAL_TITLES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "es": ("Cómo hacer {kw} fácil", "Mi rutina de {kw}", "{kw}: lo que nadie te dice",
           "Probé {kw} por una semana"),
    "pt": ("Como fazer {kw} em casa", "Minha rotina de {kw}", "{kw} que você precisa ver",
           "Testei {kw} por uma semana"),
    "ko": ("오늘의 {kw}", "{kw} 챌린지", "{kw} 꿀팁", "{kw} 브이로그"),
    "ja": ("{kw}のやり方", "今日の{kw}", "{kw}チャレンジ"),
    "id": ("Cara {kw} yang mudah", "Rutinitas {kw} aku", "Coba {kw} seminggu"),
    "de": ("So gelingt {kw}", "Meine {kw} Routine", "{kw} im Test"),
    "fr": ("Comment réussir {kw}", "Ma routine {kw}", "J'ai testé {kw} pendant une semaine"),
    "hi": ("{kw} kaise kare", "Mera {kw} routine", "{kw} ke tips"),
})
LOCAL_QUERIES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "es": ("como hacer {kw}", "{kw} en español", "mejor {kw}"),
    "pt": ("como fazer {kw}", "{kw} em português", "melhor {kw}"),
    "ko": ("{kw} 추천", "{kw} 방법"),
    "ja": ("{kw} おすすめ", "{kw} やり方"),
    "id": ("cara {kw}", "{kw} terbaik"),
    "de": ("{kw} anleitung", "beste {kw}"),
    "fr": ("comment faire {kw}", "meilleur {kw}"),
    "hi": ("{kw} kaise kare", "best {kw} hindi"),
})

# Countries: ISO-2 code -> (share of users, ((language, share), ...), high-iOS market).
COUNTRIES: Mapping[str, tuple[float, tuple[tuple[str, float], ...], bool]] = MappingProxyType({
    "US": (0.22, (("en", 0.85), ("es", 0.15)), True),
    "BR": (0.10, (("pt", 1.0),), False),
    "IN": (0.10, (("en", 0.55), ("hi", 0.45)), False),
    "ID": (0.08, (("id", 1.0),), False),
    "MX": (0.07, (("es", 1.0),), False),
    "GB": (0.05, (("en", 1.0),), True),
    "PH": (0.05, (("en", 1.0),), False),
    "DE": (0.04, (("de", 1.0),), True),
    "FR": (0.04, (("fr", 1.0),), True),
    "KR": (0.04, (("ko", 1.0),), True),
    "JP": (0.04, (("ja", 1.0),), True),
    "ES": (0.04, (("es", 1.0),), False),
    "CA": (0.03, (("en", 0.8), ("fr", 0.2)), True),
    "AR": (0.03, (("es", 1.0),), False),
    "CO": (0.03, (("es", 1.0),), False),
})
# Extra weight on a dominant topic in some countries: (country, topic, multiplier).
COUNTRY_AFFINITY: tuple[tuple[str, str, float], ...] = (
    ("KR", "kpop_dance_covers", 3.0), ("ID", "kpop_dance_covers", 1.8),
    ("PH", "kpop_dance_covers", 1.8), ("BR", "football_highlights", 2.0),
    ("MX", "football_highlights", 1.8), ("ES", "football_highlights", 1.8),
    ("GB", "football_highlights", 1.8), ("AR", "football_highlights", 2.0),
    ("US", "car_reviews", 1.4), ("JP", "indie_games", 1.5),
)

AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45+")
AGE_SHARES: tuple[float, ...] = (0.14, 0.32, 0.28, 0.16, 0.10)
AGE_ACTIVITY: tuple[float, ...] = (1.15, 1.10, 1.0, 1.0, 0.85)
DEVICES: tuple[str, ...] = ("ios", "android", "web")
DEVICE_SHARES_HIGH_IOS: tuple[float, ...] = (0.55, 0.35, 0.10)
DEVICE_SHARES_LOW_IOS: tuple[float, ...] = (0.22, 0.68, 0.10)
DEVICE_ACTIVITY: tuple[float, ...] = (1.12, 1.0, 0.8)

HANDLE_NAMES: tuple[str, ...] = (
    "maya", "leo", "sofia", "kai", "ana", "jun", "lucas", "mia", "ravi", "yuna", "omar", "lena",
    "diego", "hana", "noah", "priya", "theo", "ines", "sam", "nia", "joao", "emma", "arjun",
    "zoe", "mateo", "sora", "ella", "felix", "luna", "ben",
)


def topic_names() -> list[str]:
    """Names of the fine topics, in their fixed order."""
    return [t.name for t in TOPICS]


def topic_index(name: str) -> int:
    """Position of a topic in :data:`TOPICS`."""
    return topic_names().index(name)
